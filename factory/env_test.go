package factory_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
)

// TestMain keeps libllama's load chatter out of the test output unless -v asks for it.
func TestMain(m *testing.M) {
	level := slog.LevelWarn
	for _, a := range os.Args {
		if a == "-test.v=true" || a == "-test.v" {
			level = slog.LevelInfo
		}
	}
	bindings.SetLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	os.Exit(m.Run())
}

// Paths of the external test assets, relative to this package's directory.
const (
	toolDir  = "../build/cpu/bin"
	vocabDir = "../third_party/llama.cpp/models"
)

// requireAsset returns path made absolute, or skips the test when it is absent
// (a checkout where `make native` has not run); with ECOTUNE_REQUIRE_TOOLS=1 a
// missing asset fails the test instead, so CI cannot pass by skipping.
func requireAsset(t testing.TB, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	require.NoError(t, err)
	if _, err := os.Stat(abs); err != nil {
		msg := fmt.Sprintf("%s is missing (%v): run `make native` for llama.cpp's tools and vocabularies", path, err)
		if os.Getenv("ECOTUNE_REQUIRE_TOOLS") == "1" {
			t.Fatal("ECOTUNE_REQUIRE_TOOLS=1 but " + msg)
		}
		t.Skip(msg + " (set ECOTUNE_REQUIRE_TOOLS=1 to make this a failure)")
	}
	return abs
}

// vocab returns llama.cpp's models/ggml-vocab-NAME.gguf.
func vocab(t testing.TB, name string) string {
	return requireAsset(t, filepath.Join(vocabDir, "ggml-vocab-"+name+".gguf"))
}

// llamaCompletion runs llama.cpp's llama-completion with args and returns its
// stdout without the blank line it prints when done. The tool's asynchronous
// logger is never flushed at exit (llama.cpp issue 22142), so a run can lose
// its last lines; the closing "\n\n" marks a complete run, and incomplete runs
// are retried.
func llamaCompletion(t *testing.T, args ...string) string {
	t.Helper()
	bin := requireAsset(t, filepath.Join(toolDir, "llama-completion"))
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
