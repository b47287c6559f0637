package trainer

import (
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/internal/llamaref"
	"github.com/ecotune/ecotune/internal/testenv"
)

// storiesPath is the stories260K model committed as testdata/stories260K.gguf;
// requireStories checks that it is there.
var storiesPath = testenv.StoriesPath()

func TestMain(m *testing.M) {
	testenv.StrictF32()
	bindings.SetLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	os.Exit(m.Run())
}

// requireStories skips the test when testdata/stories260K.gguf is absent, or fails it as
// testenv.Require does.
func requireStories(t testing.TB) {
	t.Helper()
	testenv.Stories(t)
}

func loadStories(t testing.TB) *Model {
	t.Helper()
	requireStories(t)
	// F32 products throughout: the tests bound its gradients by F32's rounding
	// (TestComputeType covers the narrower compute types).
	m, err := loadTestModel(storiesPath, ModelOptions{Threads: 1, ComputeType: "f32"})
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
	return loadLlamaRef(t, path, f32, false)
}

// newLlamaRefRepacked is newLlamaRef with llama.cpp's repacking buffer, for a model whose
// weights ours repacks too (Q4_K on x86 with AVX2): both then run the repacked kernels.
func newLlamaRefRepacked(t testing.TB, path string) *llamaRef {
	return loadLlamaRef(t, path, false, true)
}

func loadLlamaRef(t testing.TB, path string, f32, repack bool) *llamaRef {
	t.Helper()
	o := bindings.ModelOptions{NoRepack: !repack}
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

// loadWithRandomLoRA loads path (onto the GPU under ECOTUNE_TEST_GPU) with a rank-4
// adapter on every module whose B is random, so that it changes the output; both are
// closed when the test ends.
func loadWithRandomLoRA(t *testing.T, path string, o ModelOptions) (*Model, *LoRA) {
	t.Helper()
	m, err := loadTestModel(path, o)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	l, err := NewLoRA(m, LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"all"}, Seed: 3})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	randomizeB(t, l, 4, 0.05)
	return m, l
}

// testStep builds the training step of params (an adapter's, or the model's own with
// lora nil) on b's shape, with its optimizer; both are closed when the test ends.
func testStep(t *testing.T, m *Model, lora *LoRA, params []*ggml.Tensor, b *Batch, dropout float32, ck checkpointing) (*stepGraph, *adamW) {
	t.Helper()
	opt, err := newAdamW(m, params, OptimizerConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { opt.Close() })
	s, err := newStepGraph(m, lora, params, opt.accs, b.B, b.T, b.Targets(), b.Starts != nil, dropout, ck)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s, opt
}

// assertAllOnGPU counts, for a model on the GPU, where the scheduler puts each node of
// g, and fails if any lands on the CPU (issue 4: QLoRA keeps every op on the GPU).
func assertAllOnGPU(t *testing.T, m *Model, g *ggml.Graph, what string) {
	t.Helper()
	if m.gpu == nil {
		return
	}
	require.NoError(t, m.sched.Alloc(g))
	placed := m.sched.Placement(g)
	t.Logf("%s step graph placement: %v", what, placed)
	assert.Empty(t, placed[m.cpu.Name()], "nodes the scheduler sent to the CPU")
}
