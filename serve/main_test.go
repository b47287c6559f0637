package serve

import (
	"log/slog"
	"os"
	"testing"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/internal/testenv"
)

// TestMain keeps llama.cpp's load chatter out of the test output unless -v asks for it.
func TestMain(m *testing.M) {
	bindings.SetLogger(testenv.LibLogger(slog.LevelError))
	os.Exit(m.Run())
}
