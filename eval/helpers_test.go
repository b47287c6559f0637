package eval

import (
	"log/slog"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/internal/testenv"
)

// storiesPath is the real model committed as testdata/stories260K.gguf; testenv.Stories
// checks that it is there.
var storiesPath = testenv.StoriesPath()

// TestMain keeps llama.cpp's load chatter out of the test output unless -v asks for it.
func TestMain(m *testing.M) {
	bindings.SetLogger(testenv.LibLogger(slog.LevelError)) // stories260K's metadata draws warnings nobody can act on
	os.Exit(m.Run())
}

// loadStories loads stories260K, closed when the test ends.
func loadStories(t testing.TB) *bindings.Model {
	t.Helper()
	testenv.Stories(t)
	m, err := bindings.LoadModel(storiesPath, bindings.ModelOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// newContext creates a context closed when the test ends. One thread: ggml's workers
// spin-wait, and the test machine's two cores are shared.
func newContext(t testing.TB, m *bindings.Model, opts bindings.ContextOptions) *bindings.Context {
	t.Helper()
	if opts.Threads == 0 {
		opts.Threads = 1
	}
	c, err := bindings.NewContext(m, opts)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}
