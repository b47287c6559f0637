package factory_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/internal/testenv"
)

// TestMain keeps libllama's load chatter out of the test output unless -v asks for it.
func TestMain(m *testing.M) {
	bindings.SetLogger(testenv.LibLogger(slog.LevelWarn))
	os.Exit(m.Run())
}

// vocab returns llama.cpp's models/ggml-vocab-NAME.gguf (see testenv).
func vocab(t testing.TB, name string) string { t.Helper(); return testenv.Vocab(t, name) }

// llamaCompletion runs llama.cpp's llama-completion with args and returns its
// stdout without the blank line it prints when done. The tool's asynchronous
// logger is never flushed at exit (llama.cpp issue 22142), so a run can lose
// its last lines; the closing "\n\n" marks a complete run, and incomplete runs
// are retried.
func llamaCompletion(t *testing.T, args ...string) string {
	t.Helper()
	bin := testenv.Tool(t, "llama-completion")
	var out string
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		cancel()
		require.NoError(t, err, "llama-completion %s failed; stderr:\n%s", strings.Join(args, " "), stderr.String())
		out = stdout.String()
		if strings.HasSuffix(out, "\n\n") {
			return strings.TrimSuffix(out, "\n\n")
		}
	}
	t.Fatalf("llama-completion never printed its closing blank line in 5 runs; last output %q", out)
	return ""
}
