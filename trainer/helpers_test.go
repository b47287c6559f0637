package trainer

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/internal/llamaref"
	"github.com/ecotune/ecotune/internal/testenv"
)

// storiesPath is the shared stories260K model (testenv.SharedDir); requireStories checks
// that it is there.
var storiesPath = filepath.Join(testenv.SharedDir(), "models", "stories260K.gguf")

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
	m, err := loadTestModel(storiesPath, ModelOptions{Threads: 1})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// gpuTests is set by ECOTUNE_TEST_GPU=1: the tests then load their models onto GPU 0
// (a CUDA build on a machine with a GPU), where graphs keep ggml's generic ops.
var gpuTests = os.Getenv("ECOTUNE_TEST_GPU") == "1"

// loadTestModel is LoadModel, on the GPU when gpuTests is set.
func loadTestModel(path string, o ModelOptions) (*Model, error) {
	o.GPU = o.GPU || gpuTests
	m, err := LoadModel(path, o)
	if err == nil && gpuTests && m.gpu == nil {
		m.Close()
		return nil, fmt.Errorf("ECOTUNE_TEST_GPU=1, but %s did not load onto a GPU (build with make CUDA=1)", path)
	}
	return m, err
}

// llamaRef is libllama on the same file: the reference our forward must match.
type llamaRef struct {
	m *bindings.Model
	c *bindings.Context
}

func newLlamaRef(t testing.TB, path string) *llamaRef {
	return newLlamaRefKV(t, path, false)
}

// newLlamaRefKV is newLlamaRef with, if f32, keys and values kept in F32 (llama.cpp's
// default is F16). Under ECOTUNE_TEST_GPU=1 libllama runs every layer on the GPU as ours
// does, so that both use CUDA's kernels, which round differently from the CPU's (F16
// activations for F16 weights, Q8_1 ones for quantized weights).
func newLlamaRefKV(t testing.TB, path string, f32 bool) *llamaRef {
	t.Helper()
	o := bindings.ModelOptions{NoRepack: true}
	if gpuTests {
		o.GPULayers = -1
	}
	m, err := bindings.LoadModel(path, o)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	c, err := bindings.NewContext(m, bindings.ContextOptions{NCtx: 256, NBatch: 256, Threads: 1,
		FlashAttn: bindings.FlashAttnDisabled, KVF32: f32})
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
	return llamaref.Logits(t, r.c, tokens)
}

// maxAbsDiff returns max |a-b| and the range max-min of b.
func maxAbsDiff(a, b []float32) (diff, rng float64) { return llamaref.MaxAbsDiff(a, b) }
