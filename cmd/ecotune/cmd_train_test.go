package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/data"
	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/trainer"
)

// storiesModel is the stories260K model committed as testdata/stories260K.gguf;
// requireModel checks that it is there.
var storiesModel = testenv.StoriesPath()

// requireModel skips without testdata/stories260K.gguf, unless testenv.Strict makes that
// a failure.
func requireModel(t *testing.T) {
	t.Helper()
	testenv.Stories(t)
}

// TestTrainResume trains 8 steps, loses the last checkpoint (as if killed before
// writing it), resumes with --resume alone, and expects the very same adapter file.
func TestTrainResume(t *testing.T) {
	requireModel(t)
	dir := filepath.Join(t.TempDir(), "run")
	data := filepath.Join("..", "..", "trainer", "testdata", "stories.txt")
	args := []string{"train", "--model", storiesModel, "--data", data, "--out", dir, "--seq-len", "32",
		"--batch", "3", "--grad-accum", "2", "--steps", "8", "--save-every", "2", "--keep-checkpoints", "2",
		"--eval-every", "4", "--lora.r", "4", "--lr", "3e-3", "--warmup", "2", "--lora.dropout", "0.1",
		"--val-split", "0.15", "--threads", "1", "--quiet", "--adam-beta2", "0.99"}
	code, _, stderr := runCLI(t, args...)
	require.Equal(t, 0, code, stderr)
	want, err := os.ReadFile(filepath.Join(dir, "adapter.gguf"))
	require.NoError(t, err)
	for _, d := range []string{"checkpoint-6", "checkpoint-8", "best"} {
		assert.DirExists(t, filepath.Join(dir, d))
	}
	assert.NoDirExists(t, filepath.Join(dir, "checkpoint-4"), "only the newest two are kept")
	var rs runSettings
	raw, err := os.ReadFile(filepath.Join(dir, "train_config.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &rs))
	assert.Contains(t, []string{"f32", "f16", "bf16"}, rs.ComputeDtype, "the compute dtype the run resolved, for --resume")

	code, _, stderr = runCLI(t, append(args[:len(args):len(args)], "--out", dir+"-x", "--compute-dtype", "q4_k")...)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `--compute-dtype: compute type "q4_k": want f32, f16 or bf16`)
	assert.NoDirExists(t, dir+"-x", "rejected before anything is written")
	assert.Equal(t, trainer.OptimizerConfig{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, ClipNorm: 1}, rs.Config.Optimizer)
	code, _, stderr = runCLI(t, append(args[:len(args):len(args)], "--out", dir+"-x", "--adam-beta1", "0")...)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "--adam-beta1 is 0: the betas must be in (0, 1)")
	assert.NoDirExists(t, dir+"-x")

	// The same command again would mix two runs in one directory.
	code, _, stderr = runCLI(t, args...)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "--resume "+dir)

	require.NoError(t, os.RemoveAll(filepath.Join(dir, "checkpoint-8")))
	code, _, stderr = runCLI(t, "train", "--resume", dir, "--lora.r", "8", "--quiet")
	assert.Equal(t, exitError, code)
	assert.Contains(t, stderr, "field config.LoRA.Rank is 4, this run asks for 8")

	code, _, stderr = runCLI(t, "train", "--resume", dir, "--quiet", "--threads", "1")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "resumed at step 6; 8 steps")
	got, err := os.ReadFile(filepath.Join(dir, "adapter.gguf"))
	require.NoError(t, err)
	assert.Equal(t, want, got, "the resumed run's adapter is byte for byte the uninterrupted one's")

	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var steps []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			Kind string `json:"kind"`
			Step int    `json:"step"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
		if r.Kind == "train" {
			steps = append(steps, r.Step)
		}
	}
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8}, steps)
}

// TestTrainFull fine-tunes every weight and checks the written model generates in
// libllama through ecotune generate.
func TestTrainFull(t *testing.T) {
	requireModel(t)
	dir := t.TempDir()
	data := filepath.Join("..", "..", "trainer", "testdata", "stories.txt")
	code, _, stderr := runCLI(t, "train", "--method", "full", "--model", storiesModel, "--data", data, "--out", dir,
		"--seq-len", "32", "--steps", "4", "--batch", "2", "--eval-every", "2", "--lr", "1e-3", "--threads", "1", "-q")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "full fine-tuning of every weight")
	model := filepath.Join(dir, "model.gguf")
	require.FileExists(t, model)
	assert.NoFileExists(t, filepath.Join(dir, "adapter.gguf"))
	code, out, stderr := runCLI(t, "generate", "-m", model, "-p", "Once upon a time", "-n", "8", "--threads", "1")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "Once upon a time")

	code, _, stderr = runCLI(t, "train", "--method", "qlora", "--model", storiesModel, "--data", data, "--out", t.TempDir())
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `--method "qlora"`)

	code, _, stderr = runCLI(t, "train", "--gradient-checkpointing", "--checkpoint-keep", "attention", "--model", storiesModel, "--data", data, "--out", t.TempDir())
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `--checkpoint-keep "attention": want none, ffn or all`)
	code, _, stderr = runCLI(t, "train", "--checkpoint-keep", "ffn", "--model", storiesModel, "--data", data, "--out", t.TempDir())
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "add --gradient-checkpointing")
}

// TestTrainTruncation checks which end of an over-long prepared example train cuts:
// the policy prepare recorded in the manifest, unless --truncation says otherwise.
func TestTrainTruncation(t *testing.T) {
	requireModel(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "qa.jsonl")
	long := strings.Repeat("The river carried the seeds down to the sea. ", 8)
	require.NoError(t, os.WriteFile(in, []byte(`{"question":"Where did the seeds go?","answer":"`+long+`"}`+"\n"), 0o644))
	prepared := filepath.Join(dir, "prep")
	code, _, stderr := runCLI(t, "prepare", in, "-o", prepared, "--val", "0", "--test", "0", "-m", storiesModel,
		"--max-tokens", "20", "--truncation", "right", "-q")
	require.Equal(t, 0, code, stderr)

	vocab, err := bindings.LoadModel(storiesModel, bindings.ModelOptions{VocabOnly: true})
	require.NoError(t, err)
	defer vocab.Close()
	tok := tokenizer{vocab}
	file := filepath.Join(prepared, "train.jsonl")
	full, err := loadTrainData(file, tok, 4096, false, "", io.Discard)
	require.NoError(t, err)
	whole, mask := full.(trainer.Examples)[0].IDs, full.(trainer.Examples)[0].Mask
	first := slices.Index(mask, true)
	require.Greater(t, len(whole), first+40)

	seqLen := first + 10 // room for the prompt and the start of the answer
	for _, c := range []struct {
		flag data.Truncation
		want []int32
	}{
		{"", whole[:seqLen+1]},      // the manifest says right: the start is kept
		{"right", whole[:seqLen+1]}, // the same, asked for
		// left keeps BOS and the end of the answer
		{"left", append([]int32{whole[0]}, whole[len(whole)-seqLen:]...)},
	} {
		ds, err := loadTrainData(file, tok, seqLen, false, c.flag, io.Discard)
		require.NoError(t, err)
		assert.Equal(t, c.want, ds.(trainer.Examples)[0].IDs, "truncation %q", c.flag)
	}
	var msg strings.Builder
	_, err = loadTrainData(file, tok, seqLen, false, "drop", &msg)
	require.Error(t, err, "the only example is too long")
	assert.Contains(t, err.Error(), "1 too long")
	_, err = loadTrainData(file, tok, seqLen, false, "middle", io.Discard)
	assert.ErrorContains(t, err, "--truncation")
}

// TestTrainPreparedFolder checks that --data takes the folder prepare wrote: its train
// split for training and its val split for evaluation, unless --val-split is given.
func TestTrainPreparedFolder(t *testing.T) {
	requireModel(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "qa.jsonl")
	var lines strings.Builder
	for i := range 40 {
		fmt.Fprintf(&lines, `{"question":"What did the frog see on day %d?","answer":"The frog saw a bird and %d flowers."}`+"\n", i, i)
	}
	require.NoError(t, os.WriteFile(in, []byte(lines.String()), 0o644))
	prepared := filepath.Join(dir, "prep")
	code, _, stderr := runCLI(t, "prepare", in, "-o", prepared, "--val", "0.2", "--test", "0", "-m", storiesModel, "-q")
	require.Equal(t, 0, code, stderr)

	settings := func(run string) runSettings {
		raw, err := os.ReadFile(filepath.Join(run, "train_config.json"))
		require.NoError(t, err)
		var rs runSettings
		require.NoError(t, json.Unmarshal(raw, &rs))
		return rs
	}
	common := []string{"--model", storiesModel, "--data", prepared, "--seq-len", "48", "--batch", "2",
		"--steps", "2", "--eval-every", "2", "--lora.r", "4", "--threads", "1", "--quiet"}
	run := filepath.Join(dir, "run")
	code, _, stderr = runCLI(t, append([]string{"train", "--out", run}, common...)...)
	require.Equal(t, 0, code, stderr)
	rs := settings(run)
	assert.Equal(t, filepath.Join(prepared, "train.jsonl"), rs.Data)
	assert.Equal(t, filepath.Join(prepared, "val.jsonl"), rs.Val)

	// Packed, the same validation set gives the same loss before training (the adapter
	// starts as the identity), from fewer, fuller sequences.
	packed := filepath.Join(dir, "run-packed")
	code, _, stderr = runCLI(t, append([]string{"train", "--out", packed, "--packing"}, common...)...)
	require.Equal(t, 0, code, stderr)
	assert.True(t, settings(packed).Config.Packing)
	assert.InDelta(t, firstEval(t, run), firstEval(t, packed), 1e-5*firstEval(t, run))

	run2 := filepath.Join(dir, "run2")
	code, _, stderr = runCLI(t, append([]string{"train", "--out", run2, "--val-split", "0.25"}, common...)...)
	require.Equal(t, 0, code, stderr)
	assert.Empty(t, settings(run2).Val, "--val-split holds out part of the train split instead")

	empty := t.TempDir()
	code, _, stderr = runCLI(t, "train", "--model", storiesModel, "--data", empty, "--out", filepath.Join(dir, "run3"), "--quiet")
	assert.Equal(t, exitError, code)
	assert.Contains(t, stderr, empty+" is a folder without manifest.json")
}

// firstEval is the validation loss a run's metrics.jsonl records before training.
func firstEval(t *testing.T, run string) float64 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(run, "metrics.jsonl"))
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var r trainer.Record
		require.NoError(t, json.Unmarshal([]byte(line), &r))
		if r.Kind == "eval" && r.Step == 0 {
			return r.Loss
		}
	}
	t.Fatalf("%s/metrics.jsonl has no evaluation at step 0", run)
	return 0
}
