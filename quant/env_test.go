package quant_test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
)

// tool returns llama.cpp's tool NAME, skipping the test when it is not built (see testenv).
func tool(t testing.TB, name string) string { t.Helper(); return testenv.Tool(t, name) }

// vocab returns llama.cpp's vocabulary ggml-vocab-NAME.gguf (see testenv).
func vocab(t testing.TB, name string) string { t.Helper(); return testenv.Vocab(t, name) }

// run runs a tool and returns its combined output, failing the test on a
// non-zero exit.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %v:\n%s", filepath.Base(name), args, out)
	return string(out)
}

var finalPPL = regexp.MustCompile(`Final estimate: PPL = ([0-9.]+)`)

// perplexity runs llama-perplexity with a 128-token context on the committed
// text. The tool's asynchronous logger is never flushed at exit (llama.cpp
// issue 22142), so a run can lose its last lines, the final estimate among
// them; such runs are retried.
func perplexity(t testing.TB, model string) float64 {
	t.Helper()
	var out string
	var m []string
	for range 5 {
		out = run(t, tool(t, "llama-perplexity"), "-m", model, "-f", "testdata/perplexity.txt", "-c", "128", "-t", "2", "--seed", "1")
		if m = finalPPL.FindStringSubmatch(out); m != nil {
			break
		}
		t.Logf("llama-perplexity printed no final estimate (%d bytes of output); running it again", len(out))
	}
	require.NotNil(t, m, "no final estimate in 5 runs of llama-perplexity; last output:\n%s", out)
	ppl, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return ppl
}
