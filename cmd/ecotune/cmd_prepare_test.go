package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPrepareFlags(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "faq.csv")
	require.NoError(t, os.WriteFile(csv, []byte("q,a\n\"What is albedo?\",\"The fraction of light a surface reflects.\"\n\"Define runoff.\",\"Water flowing over land, \"\"not\"\" soaking in.\"\n"), 0o644))

	// Unknown column names: nothing is usable without a mapping, and that is an error.
	code, out, stderr := runCLI(t, "prepare", csv, "-o", filepath.Join(dir, "a"), "-q")
	assert.Equal(t, exitError, code)
	assert.Contains(t, out, "kept 0")
	assert.Contains(t, stderr, "faq.csv:2: skipped (unknown_shape)")
	assert.NoDirExists(t, filepath.Join(dir, "a"), "a refused run leaves no output")

	code, out, stderr = runCLI(t, "prepare", csv, "-o", filepath.Join(dir, "b"), "--field", "question=q", "--field", "answer=a",
		"--val", "0", "--test", "0", "-q")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "kept 2")
	b, err := os.ReadFile(filepath.Join(dir, "b", "train.jsonl"))
	require.NoError(t, err)
	assert.Contains(t, string(b), `Water flowing over land, \"not\" soaking in.`)

	for _, bad := range [][]string{{"--template", "nosuch"}, {"--shape", "poem"}, {"--field", "colour=x"}, {"--val", "1.5"}} {
		code, _, stderr = runCLI(t, append([]string{"prepare", csv, "-o", filepath.Join(dir, "c"), "-q"}, bad...)...)
		assert.Equal(t, exitUsage, code, "%v: %s", bad, stderr)
	}
}
