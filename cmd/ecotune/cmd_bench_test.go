package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
)

func TestBench(t *testing.T) {
	requireModel(t)
	tools := filepath.Dir(testenv.Tool(t, "llama-bench"))
	testenv.Tool(t, "llama-finetune")
	code, out, stderr := runCLI(t, "bench", "--model", storiesModel, "--steps", "1", "--seq-len", "32", "--threads", "1",
		"--tools", tools, "--finetune", "--profile", "--json")
	require.Equal(t, 0, code, stderr)
	var r benchResult
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Greater(t, r.LlamaPP, 0.0)
	assert.Greater(t, r.LoRA, 0.0)
	assert.InDelta(t, r.LoRA/r.LlamaPP, r.LoRARatio, 1e-9)
	assert.Equal(t, int64(292800), r.Params, "stories260K's weights")
	if runtime.GOOS == "linux" {
		assert.Greater(t, r.LoRAPeakRSS, int64(1<<20), "the LoRA run's peak resident memory")
	}
	assert.Empty(t, r.FinetuneFailure)
	assert.Greater(t, r.Finetune, 0.0)
	assert.InDelta(t, r.LoRA/r.Finetune, r.LoRAVsFinetune, 1e-9)
	// The profile covers the step's products and names the fused ops: one attention per
	// layer (5), one adapter per module (5 layers, 7 modules), one loss. Nothing is left
	// of the generic forms.
	ops := map[string]int{}
	for _, o := range r.Profile {
		ops[o.Op] = o.Nodes
	}
	assert.Positive(t, ops["MUL_MAT f32"])
	assert.Equal(t, 5, ops["CUSTOM attention"])
	assert.Equal(t, 5, ops["CUSTOM attention back kv"])
	assert.Equal(t, 35, ops["CUSTOM lora down"])
	assert.Equal(t, 35, ops["CUSTOM lora back w"])
	assert.Equal(t, 1, ops["CUSTOM linear loss"], "the output layer and loss in vocabulary chunks: one for 512 tokens")
	for _, op := range []string{"SOFT_MAX", "SOFT_MAX_BACK", "CROSS_ENTROPY_LOSS", "CROSS_ENTROPY_LOSS_BACK"} {
		assert.Zero(t, ops[op], op)
	}

	// ggml's generic ops, for comparison. OUT_PROD is left only where it is the quicker
	// form: five per adapter pair (rank 8: A's and B's gradients, the input gradient
	// through A, and through the two products that pad the rank to 16) and, at 32 tokens
	// of 8-wide heads, attention's small ones.
	code, out, stderr = runCLI(t, "bench", "--model", storiesModel, "--steps", "1", "--seq-len", "32", "--threads", "1",
		"--tools", tools, "--profile", "--generic-ops", "--json")
	require.Equal(t, 0, code, stderr)
	r = benchResult{}
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.True(t, r.GenericOps)
	ops = map[string]int{}
	for _, o := range r.Profile {
		ops[o.Op] = o.Nodes
	}
	assert.Positive(t, ops["CROSS_ENTROPY_LOSS"])
	assert.Positive(t, ops["SOFT_MAX"])
	assert.LessOrEqual(t, ops["OUT_PROD f32"], 5*7*5+5*5, "five per adapter pair (5 layers, 7 modules), five per layer")
	for op := range ops {
		assert.NotContains(t, op, "CUSTOM")
	}

	code, _, _ = runCLI(t, "bench")
	assert.Equal(t, exitUsage, code)
	code, _, _ = runCLI(t, "bench", "--shape", "7b")
	assert.Equal(t, exitUsage, code)
}

// TestBenchQLoRAMemory runs the memory comparison through a built binary (its children
// are ecotune itself): one row per base, with the child's own peak memory and losses.
func TestBenchQLoRAMemory(t *testing.T) {
	requireModel(t)
	tools := filepath.Dir(testenv.Tool(t, "llama-bench"))
	bin := filepath.Join(t.TempDir(), "ecotune")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	model, err := filepath.Abs(storiesModel)
	require.NoError(t, err)
	cmd := exec.Command(bin, "bench", "--model", model, "--steps", "1", "--seq-len", "32", "--threads", "1",
		"--tools", tools, "--qlora", "q8_0", "--json")
	got, err := cmd.Output()
	require.NoError(t, err)
	var r benchResult
	require.NoError(t, json.Unmarshal(got, &r))
	require.Len(t, r.Memory, 2)
	assert.Equal(t, []string{"base", "q8_0"}, []string{r.Memory[0].Type, r.Memory[1].Type})
	for _, m := range r.Memory {
		assert.Greater(t, m.PeakRSS, int64(1<<20))
		assert.Greater(t, m.FileBytes, int64(0))
		assert.Greater(t, m.LossFirst, 0.0)
	}
	assert.Less(t, r.Memory[1].FileBytes, r.Memory[0].FileBytes, "Q8_0 is smaller than F32")
}

// TestRoundRatios: the serving bench's 8-stream ratio round by round, each 8-client round
// over the one-client round that ran beside it; none when the points' rounds do not pair.
func TestRoundRatios(t *testing.T) {
	assert.Equal(t, "; round by round 3.00, 2.75, 3.33", roundRatios([]float64{2700, 2750, 3000}, []float64{900, 1000, 900}))
	assert.Equal(t, "", roundRatios([]float64{2700, 2750}, []float64{900}))
	assert.Equal(t, "", roundRatios([]float64{2700}, []float64{900}))
}
