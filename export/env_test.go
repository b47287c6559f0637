package export_test

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/llamaref"
	"github.com/ecotune/ecotune/internal/testenv"
)

func TestMain(m *testing.M) {
	bindings.SetLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}

// tool returns llama.cpp's tool NAME, skipping the test when it is not built (see testenv).
func tool(t testing.TB, name string) string { t.Helper(); return testenv.Tool(t, name) }

// vocab returns llama.cpp's vocabulary ggml-vocab-NAME.gguf (see testenv).
func vocab(t testing.TB, name string) string { t.Helper(); return testenv.Vocab(t, name) }

// perplexity is llama-perplexity's estimate for model on ../quant/testdata/perplexity.txt (see testenv).
func perplexity(t testing.TB, model string) float64 {
	t.Helper()
	return testenv.Perplexity(t, model, "../quant/testdata/perplexity.txt")
}

// adapterSpec describes a random adapter written directly in llama.cpp's
// LoRA GGUF format (not through the trainer).
type adapterSpec struct {
	targets []string // base tensor names, or suffixes such as "attn_q.weight"
	rank    int
	alpha   float32
	seed    uint64
	stdB    float64 // B's standard deviation (nonzero, so the adapter matters)
}

// writeAdapter writes a random adapter for the base model at basePath and returns its path.
func writeAdapter(t testing.TB, basePath string, spec adapterSpec) string {
	t.Helper()
	base, err := gguf.Open(basePath)
	require.NoError(t, err)
	defer base.Close()
	arch, err := base.Meta.String("general.architecture")
	require.NoError(t, err)
	meta := &gguf.Metadata{}
	meta.Set("general.architecture", gguf.ValueOf(arch))
	meta.Set("general.type", gguf.ValueOf("adapter"))
	meta.Set("adapter.type", gguf.ValueOf("lora"))
	meta.Set("adapter.lora.alpha", gguf.ValueOf(spec.alpha))
	b := &gguf.Builder{Meta: meta}
	r := rand.New(rand.NewPCG(spec.seed, 7))
	randF32 := func(n int, std float64) []byte {
		out := make([]byte, 4*n)
		for i := range n {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(float32(r.NormFloat64()*std)))
		}
		return out
	}
	rank := int64(spec.rank)
	for _, w := range base.Tensors {
		if len(w.Dims) != 2 || !matches(w.Name, spec.targets) {
			continue
		}
		var aDims, bDims []int64
		var nIn int64
		if strings.HasSuffix(w.Name, "token_embd.weight") {
			aDims, bDims, nIn = []int64{rank, w.Dims[1]}, []int64{rank, w.Dims[0]}, rank
		} else {
			aDims, bDims, nIn = []int64{w.Dims[0], rank}, []int64{rank, w.Dims[1]}, w.Dims[0]
		}
		aData := randF32(int(aDims[0]*aDims[1]), 1/math.Sqrt(float64(nIn)))
		bData := randF32(int(bDims[0]*bDims[1]), spec.stdB)
		b.Tensors = append(b.Tensors,
			gguf.Tensor{TensorInfo: gguf.TensorInfo{Name: w.Name + ".lora_a", Dims: aDims, Type: gguf.TypeF32}, Data: gguf.DataBytes(aData)},
			gguf.Tensor{TensorInfo: gguf.TensorInfo{Name: w.Name + ".lora_b", Dims: bDims, Type: gguf.TypeF32}, Data: gguf.DataBytes(bData)})
	}
	require.NotEmpty(t, b.Tensors, "no base tensor matches %v", spec.targets)
	path := filepath.Join(t.TempDir(), fmt.Sprintf("adapter-%d.gguf", spec.seed))
	require.NoError(t, b.WriteFile(path))
	return path
}

func matches(name string, targets []string) bool {
	for _, s := range targets {
		if name == s || strings.HasSuffix(name, "."+s) {
			return true
		}
	}
	return false
}

// libllama evaluates a model (and adapters) with llama.cpp itself.
type libllama struct {
	m *bindings.Model
	c *bindings.Context
}

func newLibllama(t testing.TB, path string) *libllama {
	t.Helper()
	m, err := bindings.LoadModel(path, bindings.ModelOptions{NoRepack: true})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	c, err := bindings.NewContext(m, bindings.ContextOptions{NCtx: 256, NBatch: 256, Threads: 2, FlashAttn: bindings.FlashAttnDisabled})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &libllama{m: m, c: c}
}

// withAdapters applies adapters with their scales to the context.
func (l *libllama) withAdapters(t testing.TB, paths []string, scales []float32) {
	t.Helper()
	var list []bindings.AdapterScale
	for i, p := range paths {
		a, err := bindings.LoadAdapter(l.m, p)
		require.NoError(t, err)
		t.Cleanup(func() { a.Close() })
		list = append(list, bindings.AdapterScale{Adapter: a, Scale: scales[i]})
	}
	require.NoError(t, l.c.SetAdapters(list))
}

// logits decodes text from position 0 and returns every position's logits, concatenated.
func (l *libllama) logits(t testing.TB, text string) []float32 {
	t.Helper()
	tokens, err := l.m.Tokenize(text, true, false)
	require.NoError(t, err)
	return llamaref.Flat(llamaref.Logits(t, l.c, tokens))
}

// maxAbsDiff returns max |a-b| and the range max-min of b.
func maxAbsDiff(a, b []float32) (diff, rng float64) { return llamaref.MaxAbsDiff(a, b) }
