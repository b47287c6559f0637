package main

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/trainer"
)

// torchScript is the PyTorch peer's script, seen from this package's directory.
var torchScript = filepath.Join("..", "..", "scripts", "bench_torch_lora.py")

// requireTorch skips without Debian's python3 and torch. It skips even under
// ECOTUNE_REQUIRE_TOOLS=1: `make test` does not install python3-torch (only `make
// bench` does, the one target that needs it), so a missing torch is not a broken
// test environment.
func requireTorch(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(debianPython, "-c", "import torch").CombinedOutput(); err != nil {
		t.Skipf("%s cannot import torch (%s): %v %s", debianPython, torchInstall, err, lastLines(string(out), 1))
	}
}

// benchTorchModels writes two small models the peer builds: llama with grouped-query
// attention, its own output weight and a rope base other than the default; qwen2 tied,
// with one key/value head and its own epsilon and base (1e-6, 1e6). The weights'
// standard deviation (0.2) makes attention far from uniform, so that the positions
// and the heads' pairing matter to the logits.
func benchTorchModels(t *testing.T) map[string]string {
	dir := t.TempDir()
	specs := map[string]factory.Spec{
		"llama": {Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96, VocabSize: 300, RopeBase: 500000, Std: 0.2, Seed: 1},
		"qwen2": {Arch: "qwen2", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 1, FF: 96, VocabSize: 300, TiedEmbeddings: true, Std: 0.2, Seed: 2},
	}
	out := map[string]string{}
	for name, s := range specs {
		out[name] = filepath.Join(dir, name+".gguf")
		require.NoError(t, factory.Init(s, out[name]))
	}
	return out
}

// TestBenchTorchArgs checks the plumbing: the script's arguments come from the GGUF's
// hyper-parameters and ecotune's LoRA settings, and a peer that cannot run is one line.
func TestBenchTorchArgs(t *testing.T) {
	models := benchTorchModels(t)
	s, err := readTorchShape(models["llama"])
	require.NoError(t, err)
	assert.Equal(t, torchShape{Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, HeadDim: 16, FF: 96, Vocab: 300,
		RopeTheta: 500000, NormEps: float64(float32(1e-5))}, s)
	r := torchRun{Shape: s, Rank: 8, Alpha: 16, Targets: []string{"attn_q", "ffn_down"}, LR: 2e-4, SeqLen: 512, Steps: 4, Threads: 2}
	assert.Equal(t, strings.Fields("--arch llama --embd 64 --layers 2 --heads 4 --heads-kv 2 --head-dim 16 --ff 96 --vocab 300 "+
		"--rope-theta 500000 --norm-eps 9.999999747378752e-06 --rank 8 --alpha 16 --targets attn_q,ffn_down "+
		"--lr 0.0002 --seq-len 512 --steps 4 --warmup 1 --threads 2"), r.args())

	s, err = readTorchShape(models["qwen2"])
	require.NoError(t, err)
	assert.Equal(t, torchShape{Arch: "qwen2", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 1, HeadDim: 16, FF: 96, Vocab: 300,
		RopeTheta: 1e6, NormEps: float64(float32(1e-6)), Tied: true}, s)
	assert.Contains(t, torchRun{Shape: s}.args(), "--tied")

	// What the peer does not build, and what it cannot run without, are one line each.
	other := filepath.Join(t.TempDir(), "phi2.gguf")
	require.NoError(t, factory.Init(factory.Spec{Arch: "phi2", Embd: 64, Layers: 1, Heads: 4, FF: 96, VocabSize: 300}, other))
	_, failure, err := torchLoRA(context.Background(), debianPython, torchScript, other, r)
	require.NoError(t, err)
	assert.Contains(t, failure, "llama and qwen2 models, not phi2")
	_, failure, err = torchLoRA(context.Background(), "/nonexistent/python3", torchScript, models["llama"], r)
	require.NoError(t, err)
	assert.Equal(t, "no Python interpreter /nonexistent/python3 ("+torchInstall+")", failure)
	_, failure, err = torchLoRA(context.Background(), debianPython, "nonexistent.py", models["llama"], r)
	require.NoError(t, err)
	assert.Contains(t, failure, "nonexistent.py is missing")
}

// TestBenchTorchMatchesEcotune checks that the peer trains the model ecotune trains:
// with the weights of a GGUF file and of an ecotune adapter (B not zero, so the
// adapters' placement, orientation and alpha/r scaling count), the script's forward
// pass (--check, with the arguments the bench would pass) gives ecotune's logits.
func TestBenchTorchMatchesEcotune(t *testing.T) {
	requireTorch(t)
	for arch, path := range benchTorchModels(t) {
		t.Run(arch, func(t *testing.T) {
			m, err := trainer.LoadModel(path, trainer.ModelOptions{Threads: 1})
			require.NoError(t, err)
			defer m.Close()
			cfg := trainer.LoRAConfig{Rank: 4, Alpha: 12, Targets: []string{"all"}, Seed: 3}
			l, err := trainer.NewLoRA(m, cfg)
			require.NoError(t, err)
			defer l.Close()
			r := rand.New(rand.NewPCG(5, 6))
			for _, name := range l.Names() {
				if strings.HasSuffix(name, ".lora_b") {
					v, err := l.Get(name)
					require.NoError(t, err)
					for i := range v {
						v[i] = float32(0.1 * r.NormFloat64())
					}
					require.NoError(t, l.Set(name, v))
				}
			}
			adapter := filepath.Join(t.TempDir(), "adapter.gguf")
			require.NoError(t, l.WriteAdapter(adapter))
			const T = 12
			tokens := make([]int32, T)
			ids := make([]string, T)
			for i := range tokens {
				tokens[i] = int32(r.IntN(m.HP.Vocab))
				ids[i] = strconv.Itoa(int(tokens[i]))
			}
			want, err := m.Logits(tokens, 1, T, l)
			require.NoError(t, err)

			shape, err := readTorchShape(path)
			require.NoError(t, err)
			targets, err := loraTargets(m, cfg.Targets)
			require.NoError(t, err)
			run := torchRun{Shape: shape, Rank: cfg.Rank, Alpha: cfg.Alpha, Targets: targets, LR: 1e-3, SeqLen: T, Steps: 1, Threads: 1}
			args := append([]string{torchScript}, run.args()...)
			args = append(args, "--check", path, "--adapter", adapter, "--tokens", strings.Join(ids, ","))
			cmd := exec.Command(debianPython, args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			require.NoError(t, err, "%s", stderr.String())
			var got struct{ Logits [][]float64 }
			require.NoError(t, json.Unmarshal(out, &got))
			require.Len(t, got.Logits, T)
			// Both compute in float32 with different summation orders (ggml's kernels,
			// OpenBLAS) and their own cos/sin tables: the differences are a few float32
			// roundings of values of a few units, about 1e-6. A wrong model (rope pairs
			// taken the other way, query heads mapped to the wrong key/value head, the
			// adapters' scale or orientation) differs by 0.1 or more.
			var worst, top float64
			for p := range T {
				require.Len(t, got.Logits[p], m.HP.Vocab)
				for v, g := range got.Logits[p] {
					w := float64(want[p*m.HP.Vocab+v])
					worst, top = max(worst, math.Abs(g-w)), max(top, math.Abs(w))
				}
			}
			t.Logf("%s: largest logit %.3f, largest difference %.2e", arch, top, worst)
			assert.Less(t, worst, 1e-4*top)
		})
	}
}

// TestBenchTorch runs `ecotune bench --torch` end to end on stories260K: the peer's
// figures sit beside ecotune's, or, without torch, one line says why.
func TestBenchTorch(t *testing.T) {
	requireModel(t)
	tools := filepath.Dir(testenv.Tool(t, "llama-bench"))
	code, out, stderr := runCLI(t, "bench", "--model", storiesModel, "--steps", "2", "--seq-len", "32", "--threads", "1",
		"--tools", tools, "--torch", "--torch-script", torchScript, "--json")
	require.Equal(t, 0, code, stderr)
	var r benchResult
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Positive(t, r.LoRAPeakRSS)
	if exec.Command(debianPython, "-c", "import torch").Run() != nil {
		assert.Contains(t, r.TorchFailure, "torch")
		return
	}
	require.Empty(t, r.TorchFailure)
	assert.Positive(t, r.Torch)
	assert.InDelta(t, r.LoRA/r.Torch, r.LoRAVsTorch, 1e-9)
	assert.Greater(t, r.TorchPeakRSS, int64(50<<20), "a Python process with torch loaded")
	assert.NotEmpty(t, r.TorchVersion)
}
