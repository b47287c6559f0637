package trainer

import (
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/internal/testenv"
)

// storiesPath is the shared stories260K model, relative to this package's directory;
// requireStories checks that it is there.
var storiesPath = filepath.Join("..", "..", "shared", "models", "stories260K.gguf")

func TestMain(m *testing.M) {
	bindings.SetLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	os.Exit(m.Run())
}

// requireStories skips the test when the shared stories260K model is absent, or fails it
// with ECOTUNE_REQUIRE_TOOLS=1.
func requireStories(t testing.TB) {
	t.Helper()
	testenv.Stories(t)
}

func loadStories(t testing.TB) *Model {
	t.Helper()
	requireStories(t)
	m, err := LoadModel(storiesPath, ModelOptions{Threads: 1})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// llamaRef is libllama on the same file: the reference our forward must match.
type llamaRef struct {
	m *bindings.Model
	c *bindings.Context
}

func newLlamaRef(t testing.TB, path string) *llamaRef {
	t.Helper()
	m, err := bindings.LoadModel(path, bindings.ModelOptions{NoRepack: true})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	c, err := bindings.NewContext(m, bindings.ContextOptions{NCtx: 256, NBatch: 256, Threads: 1, FlashAttn: bindings.FlashAttnDisabled})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &llamaRef{m: m, c: c}
}

func (r *llamaRef) tokenize(t testing.TB, text string) []int32 {
	t.Helper()
	ids, err := r.m.Tokenize(text, true, false)
	require.NoError(t, err)
	return ids
}

// logits decodes one sequence from position 0 and returns every position's logits.
func (r *llamaRef) logits(t testing.TB, tokens []int32) [][]float32 {
	t.Helper()
	require.NoError(t, r.c.ClearMemory())
	b, err := bindings.NewBatch(len(tokens), 1)
	require.NoError(t, err)
	defer b.Close()
	for i, tok := range tokens {
		require.NoError(t, b.Add(tok, int32(i), []int32{0}, true))
	}
	require.NoError(t, r.c.Decode(b))
	out := make([][]float32, len(tokens))
	for i := range tokens {
		out[i], err = r.c.Logits(i)
		require.NoError(t, err)
	}
	return out
}

// maxAbsDiff returns max |a-b| and the range max-min of b.
func maxAbsDiff(a, b []float32) (diff, rng float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range a {
		diff = math.Max(diff, math.Abs(float64(a[i])-float64(b[i])))
		lo, hi = math.Min(lo, float64(b[i])), math.Max(hi, float64(b[i]))
	}
	return diff, hi - lo
}
