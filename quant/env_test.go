package quant_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// Paths of the external test assets, relative to this package's directory.
const (
	toolDir     = "../build/cpu/bin"
	vocabDir    = "../third_party/llama.cpp/models"
	storiesPath = "../../shared/models/stories260K.gguf"
)

// requireAsset returns path made absolute, or skips the test when it is
// absent (a checkout without `make`, or without ../shared); with
// ECOTUNE_REQUIRE_TOOLS=1 a missing asset fails the test instead.
func requireAsset(t testing.TB, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	require.NoError(t, err)
	if _, err := os.Stat(abs); err != nil {
		msg := fmt.Sprintf("%s is missing (%v): run `make native` for llama.cpp and its tools; ../shared holds the shared models", path, err)
		if os.Getenv("ECOTUNE_REQUIRE_TOOLS") == "1" {
			t.Fatal("ECOTUNE_REQUIRE_TOOLS=1 but " + msg)
		}
		t.Skip(msg + " (set ECOTUNE_REQUIRE_TOOLS=1 to make this a failure)")
	}
	return abs
}

func tool(t testing.TB, name string) string { return requireAsset(t, filepath.Join(toolDir, name)) }

func vocab(t testing.TB, name string) string {
	return requireAsset(t, filepath.Join(vocabDir, "ggml-vocab-"+name+".gguf"))
}

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
