package serve

import (
	"log/slog"
	"os"
	"testing"

	"github.com/ecotune/ecotune/bindings"
)

// TestMain keeps llama.cpp's load chatter out of the test output unless -v asks for it.
func TestMain(m *testing.M) {
	level := slog.LevelError
	for _, a := range os.Args {
		if a == "-test.v=true" || a == "-test.v" {
			level = slog.LevelInfo
		}
	}
	bindings.SetLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	os.Exit(m.Run())
}
