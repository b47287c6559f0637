package main

import (
	"encoding/json"
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/eval"
)

// TestTrainThenEvalReport trains a small adapter with the CLI, then evaluates base and
// adapter with it. The adapter's loss on a held-out text, computed by eval through
// libllama, must equal the validation loss the trainer computed with its own ggml graph.
func TestTrainThenEvalReport(t *testing.T) {
	requireModel(t)
	dir := t.TempDir()
	story := "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. " +
		"One day, she saw a big, red ball. She ran to get it and laughed. Her mom smiled and said, you are a good girl. "
	const val = "Tom had a big dog named Max. Max liked to run and jump in the green grass."
	require.NoError(t, os.WriteFile(filepath.Join(dir, "train.txt"), []byte(strings.Repeat(story, 6)), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "val.txt"), []byte(val), 0o644))
	run := filepath.Join(dir, "run")
	code, _, stderr := runCLI(t, "train", "--model", storiesModel, "--data", filepath.Join(dir, "train.txt"),
		"--val", filepath.Join(dir, "val.txt"), "--out", run, "--steps", "20", "--seq-len", "64", "--lr", "5e-3",
		"--lora.r", "4", "--eval-every", "10", "--threads", "1", "--quiet")
	require.Equal(t, 0, code, stderr)

	// The train command drew loss.svg from metrics.jsonl.
	svg, err := os.ReadFile(filepath.Join(run, "loss.svg"))
	require.NoError(t, err, stderr)
	var doc struct {
		Paths []struct {
			Series string `xml:"data-series,attr"`
		} `xml:"path"`
	}
	require.NoError(t, xml.Unmarshal(svg, &doc))
	require.Len(t, doc.Paths, 2)
	assert.Equal(t, "train", doc.Paths[0].Series)
	assert.Equal(t, "validation", doc.Paths[1].Series)
	log, err := eval.ReadTrainingLog(filepath.Join(run, "metrics.jsonl"))
	require.NoError(t, err)
	require.Len(t, log.Train, 20)
	require.Len(t, log.Eval, 3, "before the first step, at 10 and at 20")

	items := filepath.Join(dir, "items.jsonl")
	lines := []map[string]any{
		{"id": "val", "prompt": "", "reference": val},
		{"id": "s1", "prompt": "Once upon a time", "reference": ", there was a little girl named Lily."},
		{"id": "s2", "prompt": "One day, she saw", "references": []string{"a big, red ball.", "a ball"}},
	}
	var sb strings.Builder
	for _, l := range lines {
		b, _ := json.Marshal(l)
		sb.Write(append(b, '\n'))
	}
	require.NoError(t, os.WriteFile(items, []byte(sb.String()), 0o644))
	out := filepath.Join(dir, "report")
	adapter := filepath.Join(run, "adapter.gguf")
	code, stdout, stderr := runCLI(t, "eval", "--model", storiesModel, "--adapter", adapter, "--data", items,
		"--metrics", filepath.Join(run, "metrics.jsonl"), "-o", out, "--max-tokens", "24", "--threads", "1", "--parallel", "3")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "| base |")
	assert.Contains(t, stdout, "| "+strings.TrimSuffix(adapter, ".gguf")+" |")
	for _, f := range []string{"report.json", "report.md", "report.html"} {
		assert.FileExists(t, filepath.Join(out, f))
	}

	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	require.NoError(t, err)
	var rep eval.Report
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Len(t, rep.Systems, 2)
	require.Len(t, rep.Examples, 3)
	require.NotNil(t, rep.Training)
	var valEx *eval.ExampleResult
	for i := range rep.Examples {
		if rep.Examples[i].ID == "val" {
			valEx = &rep.Examples[i]
		}
	}
	require.NotNil(t, valEx)
	require.NotNil(t, valEx.Outputs[0].Loss)
	require.NotNil(t, valEx.Outputs[1].Loss)
	t.Logf("validation loss, trainer vs eval: base %.6f vs %.6f, adapter %.6f vs %.6f",
		log.Eval[0].Loss, *valEx.Outputs[0].Loss, log.Eval[2].Loss, *valEx.Outputs[1].Loss)
	// Step 0 is the base model (LoRA B starts at zero); step 20 is the adapter written.
	assert.InDelta(t, log.Eval[0].Loss, *valEx.Outputs[0].Loss, 2e-3, "base loss: eval vs trainer")
	assert.InDelta(t, log.Eval[2].Loss, *valEx.Outputs[1].Loss, 2e-3, "adapter loss: eval vs trainer")
	assert.Greater(t, math.Abs(*valEx.Outputs[0].Loss-*valEx.Outputs[1].Loss), 1e-3, "training moved the loss")

	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	require.NoError(t, err)
	assert.Contains(t, string(html), `<path class="series" data-series="validation"`)
}

func TestEvalReportUsage(t *testing.T) {
	code, _, stderr := runCLI(t, "eval", "--model", "m.gguf")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "--data")
	code, _, stderr = runCLI(t, "eval", "extra")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "eval score")
}

// TestEvalPreparedSplit evaluates the test split `ecotune prepare` writes for the
// bundled environment Q&A: prompts come rendered by the template, references are the
// original answers, and the loss covers the answer tokens.
func TestEvalPreparedSplit(t *testing.T) {
	requireModel(t)
	dir := t.TempDir()
	prep := filepath.Join(dir, "prep")
	qa := filepath.Join("..", "..", "data", "environment", "qa.jsonl")
	code, _, stderr := runCLI(t, "prepare", "-o", prep, "--template", "alpaca", "--test", "0.2", "--quiet", qa)
	require.Equal(t, 0, code, stderr)

	out := filepath.Join(dir, "report")
	code, stdout, stderr := runCLI(t, "eval", "--model", storiesModel, "--data", filepath.Join(prep, "test.jsonl"),
		"-o", out, "--limit", "4", "--max-tokens", "12", "--threads", "1", "--quiet")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "| base |")

	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	require.NoError(t, err)
	var rep eval.Report
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Len(t, rep.Examples, 4)
	require.Len(t, rep.Systems, 1)
	require.NotNil(t, rep.Systems[0].Loss)
	assert.Greater(t, rep.Systems[0].Loss.Tokens, 40)

	// Every reference is the answer of the source record, and every prompt ends with
	// Alpaca's response header.
	answers := map[string]bool{}
	src, err := os.ReadFile(qa)
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(src)), "\n") {
		var rec struct{ Answer string }
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		answers[strings.Join(strings.Fields(rec.Answer), " ")] = true
	}
	for _, e := range rep.Examples {
		require.Len(t, e.References, 1)
		assert.True(t, answers[strings.Join(strings.Fields(e.References[0]), " ")], "reference %q is not a source answer", e.References[0])
		assert.True(t, strings.HasSuffix(e.Prompt, "### Response:\n"), "prompt %q", e.Prompt)
		assert.NotNil(t, e.Outputs[0].Loss)
	}
}

func TestEvalReportPromptTooLong(t *testing.T) {
	requireModel(t)
	items := filepath.Join(t.TempDir(), "items.jsonl")
	require.NoError(t, os.WriteFile(items, []byte(`{"prompt":"`+strings.Repeat("the dog ran ", 120)+`","reference":"x"}`+"\n"), 0o644))
	// llama.cpp rounds the context up to 256 tokens, so the 360-token prompt is too long for it.
	code, _, stderr := runCLI(t, "eval", "-m", storiesModel, "--data", items, "-o", t.TempDir(), "--seq-len", "32", "--threads", "1", "-q")
	assert.Equal(t, exitError, code)
	assert.Contains(t, stderr, "raise --seq-len")
}
