package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireFile skips when path is absent (no `make native` yet), or fails with
// ECOTUNE_REQUIRE_TOOLS=1.
func requireFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("ECOTUNE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("ECOTUNE_REQUIRE_TOOLS=1 but %s is missing: %v", path, err)
		}
		t.Skipf("%s is missing (run make native): %v", path, err)
	}
}

// TestDemoRuns runs the demo with two training steps and checks its summary against
// the files it wrote.
func TestDemoRuns(t *testing.T) {
	vocab := "../../third_party/llama.cpp/models/ggml-vocab-llama-spm.gguf"
	tools := "../../build/cpu/bin"
	requireFile(t, vocab)
	requireFile(t, filepath.Join(tools, "llama-completion"))
	out := t.TempDir()
	code, stdout, stderr := runCLI(t, "demo", "--out", out, "--steps", "5", "--threads", "2",
		"--data", "../../data/environment", "--vocab", vocab, "--tools", tools, "--config", "../../configs/demo.toml")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	for i := 1; i <= 6; i++ {
		assert.Contains(t, stderr, fmt.Sprintf("[%d/6] ", i))
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

	f, err := os.Open(filepath.Join(out, "run", "metrics.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var evals []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			Kind string
			Loss float64
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
		if r.Kind == "eval" {
			evals = append(evals, r.Loss)
		}
	}
	require.GreaterOrEqual(t, len(evals), 2)
	assert.Contains(t, stdout, fmt.Sprintf("| validation loss (answer tokens) | %.4f | %.4f |", evals[0], evals[len(evals)-1]))
	assert.Contains(t, stdout, "loaded 56 tensors from lora file", "4 layers × 7 modules × (A, B)")
	assert.FileExists(t, filepath.Join(out, "run", "adapter.gguf"))
	assert.True(t, strings.Contains(stdout, "bin/ecotune generate -m "+filepath.Join(out, "base.gguf")), stdout)
}

func TestBashQuote(t *testing.T) {
	assert.Equal(t, `$'### Q:\nit\'s \\ ok'`, bashQuote("### Q:\nit's \\ ok"))
}
