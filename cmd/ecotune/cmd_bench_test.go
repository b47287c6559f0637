package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBench(t *testing.T) {
	requireModel(t)
	requireFile(t, filepath.Join("..", "..", "build", "cpu", "bin", "llama-bench"))
	code, out, stderr := runCLI(t, "bench", "--model", storiesModel, "--steps", "1", "--seq-len", "32", "--threads", "1",
		"--tools", "../../build/cpu/bin", "--json")
	require.Equal(t, 0, code, stderr)
	var r benchResult
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Greater(t, r.LlamaPP, 0.0)
	assert.Greater(t, r.LoRA, 0.0)
	assert.InDelta(t, r.LoRA/r.LlamaPP, r.LoRARatio, 1e-9)
	assert.Equal(t, int64(292800), r.Params, "stories260K's weights")

	code, _, _ = runCLI(t, "bench")
	assert.Equal(t, exitUsage, code)
	code, _, _ = runCLI(t, "bench", "--shape", "7b")
	assert.Equal(t, exitUsage, code)
}
