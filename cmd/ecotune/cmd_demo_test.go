package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/eval"
	"github.com/ecotune/ecotune/internal/testenv"
)

// TestDemoRuns runs the demo with five training steps and four test examples, and
// checks its summary against the files it wrote.
func TestDemoRuns(t *testing.T) {
	vocab := "../../third_party/llama.cpp/models/ggml-vocab-llama-spm.gguf"
	testenv.Vocab(t, "llama-spm")
	tools := filepath.Dir(testenv.Tool(t, "llama-completion"))
	out := t.TempDir()
	code, stdout, stderr := runCLI(t, "demo", "--out", out, "--steps", "5", "--limit", "4", "--threads", "2",
		"--data", "../../data/environment", "--base", "../../models/ecotune-env-base.weights.gguf", "--vocab", vocab,
		"--tools", tools, "--config", "../../configs/demo.toml")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	for i := 1; i <= 8; i++ {
		assert.Contains(t, stderr, fmt.Sprintf("[%d/8] ", i))
	}
	assert.Contains(t, stderr, "$ ecotune train --config ../../configs/demo.toml")

	var man struct {
		Records int
		Counts  struct{ Train, Val, Test int }
	}
	b, err := os.ReadFile(filepath.Join(out, "data", "manifest.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &man))
	assert.Contains(t, stdout, fmt.Sprintf("%d train, %d validation, %d test examples (of %d records)",
		man.Counts.Train, man.Counts.Val, man.Counts.Test, man.Records))

	var rep eval.Report
	b, err = os.ReadFile(filepath.Join(out, "report", "report.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Len(t, rep.Systems, 2)
	assert.Len(t, rep.Examples, 4)
	assert.Contains(t, stdout, "held-out test split, 4 examples")
	for i, name := range []string{"base", "tuned (LoRA)"} {
		m := rep.Systems[i]
		require.NotNil(t, m.Loss)
		assert.Contains(t, stdout, fmt.Sprintf("| %s | %.2f | %.2f | %.2f | %.2f | %.4f | %.1f |", name,
			m.Table.ExactMatch, m.Table.F1, m.Table.BLEU.Score, m.Table.RougeL, m.Loss.MeanNLL, m.Loss.Perplexity))
	}
	for _, f := range []string{"merged.gguf", "report/report.html", "ollama/Modelfile", "peft/adapter_config.json",
		"peft/adapter_model.safetensors", "run/loss.svg"} {
		assert.FileExists(t, filepath.Join(out, f))
	}
	assert.Contains(t, stderr, "### Response:", "llama-completion's continuation is shown")
	assert.Contains(t, stdout, "bin/ecotune generate -m "+filepath.Join(out, "merged.gguf"))
	assert.Contains(t, stdout, "bin/ecotune chat -m "+filepath.Join(out, "merged.gguf")+" --format alpaca")
}

func TestBashQuote(t *testing.T) {
	assert.Equal(t, `$'### Q:\nit\'s \\ ok'`, bashQuote("### Q:\nit's \\ ok"))
}
