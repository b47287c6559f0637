package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"ecotune"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	code, _, stderr := runCLI(t, "no-such-command")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `no command "no-such-command"`)

	code, _, stderr = runCLI(t, "devices", "--no-such-flag")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "hint:")

	code, _, stderr = runCLI(t, "eval", "score", "--predictions", filepath.Join(t.TempDir(), "missing.jsonl"))
	assert.Equal(t, exitError, code)
	assert.Contains(t, stderr, "missing.jsonl")
	assert.NotContains(t, stderr, "goroutine", "errors are one line, not a stack trace")

	code, _, stderr = runCLI(t, "prepare", "some/dir")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `Required flag "out" not set`)
	assert.NotContains(t, stderr, "no command")

	code, out, _ := runCLI(t, "devices")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "CPU")
}

func TestEvalScore(t *testing.T) {
	p := filepath.Join(t.TempDir(), "both.jsonl")
	require.NoError(t, os.WriteFile(p, []byte(
		`{"id":"a","prediction":"The cat sat on the mat.","reference":"The cat sat on the mat."}`+"\n"+
			`{"id":"b","prediction":"blue","references":["red","green"]}`+"\n"), 0o644))
	code, out, stderr := runCLI(t, "eval", "score", "--predictions", p)
	require.Equal(t, 0, code, stderr)
	// One exact match of two; F1 is 1 and 0 (no shared token).
	assert.Contains(t, out, "| exact match | 50.00 |")
	assert.Contains(t, out, "| token F1 | 50.00 |")
}

func TestEveryCommandHasHelpWithExample(t *testing.T) {
	for _, c := range commands() {
		code, out, stderr := runCLI(t, c.Name, "--help")
		require.Equal(t, 0, code, stderr)
		assert.Contains(t, out, c.Name)
		if len(c.Subcommands) == 0 {
			assert.Contains(t, out, "Example", "%s --help shows an example", c.Name)
		}
		for _, s := range c.Subcommands {
			code, out, _ := runCLI(t, c.Name, s.Name, "--help")
			require.Equal(t, 0, code)
			assert.Contains(t, out, "Example", "%s %s --help shows an example", c.Name, s.Name)
		}
	}
}
