package quant_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/quant"
)

// initModel writes a factory model into the test's temporary directory.
func initModel(t testing.TB, spec factory.Spec) string {
	t.Helper()
	if spec.Seed == 0 {
		spec.Seed = 7
	}
	path := filepath.Join(t.TempDir(), spec.Arch+".gguf")
	require.NoError(t, factory.Init(spec, path))
	return path
}

// tensorTypes reads the name -> type map of a GGUF file.
func tensorTypes(t testing.TB, path string) map[string]gguf.Type {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string]gguf.Type{}
	for _, ti := range f.Tensors {
		out[ti.Name] = ti.Type
	}
	return out
}

// quantizeBoth quantizes in with QuantizeModel and with llama-quantize and
// returns both output paths.
func quantizeBoth(t *testing.T, in string, ft quant.FileType) (ours, theirs string) {
	t.Helper()
	dir := t.TempDir()
	ours = filepath.Join(dir, "ours-"+ft.String()+".gguf")
	theirs = filepath.Join(dir, "llama-"+ft.String()+".gguf")
	_, err := quant.QuantizeModel(context.Background(), in, ours, quant.Options{Type: ft})
	require.NoError(t, err)
	testenv.Run(t, tool(t, "llama-quantize"), in, theirs, ft.String(), "2")
	return ours, theirs
}

// TestQuantizeModelMatchesLlamaQuantize checks the per-tensor types and then
// the whole file against llama-quantize's output, over architectures and
// widths that exercise the mix rules (more bits for some attn_v and ffn_down
// layers, tied embeddings, fused QKV) and the fallbacks (rows not a multiple
// of 256, or of 32).
func TestQuantizeModelMatchesLlamaQuantize(t *testing.T) {
	tool(t, "llama-quantize")
	all := []quant.FileType{
		quant.FileTypeF32, quant.FileTypeF16, quant.FileTypeBF16, quant.FileTypeQ8_0, quant.FileTypeQ4_0,
		quant.FileTypeQ4_1, quant.FileTypeQ5_0, quant.FileTypeQ5_1, quant.FileTypeQ4_K_S, quant.FileTypeQ4_K_M,
		quant.FileTypeQ5_K_S, quant.FileTypeQ5_K_M, quant.FileTypeQ6_K, quant.FileTypeIQ4_NL, quant.FileTypeIQ4_XS,
	}
	cases := []struct {
		name  string
		model func(t *testing.T) string
		types []quant.FileType
	}{
		{"llama 8 layers gqa4", func(t *testing.T) string {
			return initModel(t, factory.Spec{Arch: "llama", Embd: 256, Layers: 8, Heads: 4, HeadsKV: 1, FF: 256, VocabSize: 256})
		}, []quant.FileType{quant.FileTypeQ4_K_M, quant.FileTypeQ4_K_S, quant.FileTypeQ5_K_M, quant.FileTypeIQ4_NL}},
		{"llama 1 layer", func(t *testing.T) string {
			return initModel(t, factory.Spec{Arch: "llama", Embd: 256, Layers: 1, Heads: 4, HeadsKV: 1, FF: 256, VocabSize: 256})
		}, all},
		{"phi3 width 64 tied", func(t *testing.T) string {
			return initModel(t, factory.Spec{Arch: "phi3", Embd: 64, Layers: 2, Heads: 4, FF: 96, VocabSize: 1000, TiedEmbeddings: true})
		}, []quant.FileType{quant.FileTypeQ4_K_M, quant.FileTypeQ4_0, quant.FileTypeIQ4_NL, quant.FileTypeQ8_0}},
		{"qwen2 width 128", func(t *testing.T) string {
			return initModel(t, factory.Spec{Arch: "qwen2", Embd: 128, Layers: 3, Heads: 4, HeadsKV: 1, FF: 96, VocabSize: 256})
		}, []quant.FileType{quant.FileTypeQ4_K_S, quant.FileTypeIQ4_XS, quant.FileTypeQ5_K_M, quant.FileTypeIQ4_NL}},
		{"gemma2", func(t *testing.T) string {
			return initModel(t, factory.Spec{Arch: "gemma2", Embd: 256, Layers: 2, Heads: 4, HeadsKV: 2, FF: 512, VocabSize: 1000})
		}, []quant.FileType{quant.FileTypeQ4_K_M, quant.FileTypeQ6_K}},
		{"phi2", func(t *testing.T) string {
			return initModel(t, factory.Spec{Arch: "phi2", Embd: 64, Layers: 2, Heads: 4, FF: 128, VocabSize: 1000})
		}, []quant.FileType{quant.FileTypeQ4_K_M, quant.FileTypeQ5_0}},
		{"stories260K (real, ff 172)", func(t *testing.T) string {
			return testenv.Stories(t)
		}, []quant.FileType{quant.FileTypeQ4_K_M, quant.FileTypeQ8_0, quant.FileTypeIQ4_NL, quant.FileTypeQ4_0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.model(t)
			for _, ft := range c.types {
				ours, theirs := quantizeBoth(t, in, ft)
				want, got := tensorTypes(t, theirs), tensorTypes(t, ours)
				require.Equal(t, want, got, "%s: per-tensor types (-llama-quantize +ours)", ft)
				a, err := os.ReadFile(theirs)
				require.NoError(t, err)
				b, err := os.ReadFile(ours)
				require.NoError(t, err)
				assert.True(t, bytes.Equal(a, b), "%s: files differ (%d vs %d bytes)", ft, len(a), len(b))
			}
		})
	}
}

// TestQuantizedPerplexity compares llama-perplexity on our Q8_0, Q4_0, Q4_K
// and nf4 (IQ4_NL) files with llama-quantize's, for a llama model with a real
// vocabulary.
func TestQuantizedPerplexity(t *testing.T) {
	tool(t, "llama-quantize")
	tool(t, "llama-perplexity")
	in := initModel(t, factory.Spec{Arch: "llama", Embd: 256, Layers: 2, Heads: 4, HeadsKV: 2, FF: 768, VocabFile: vocab(t, "llama-spm")})
	for _, name := range []string{"q8_0", "q4_0", "q4_k", "nf4"} {
		ft, err := quant.ParseFileType(name)
		require.NoError(t, err)
		ours, theirs := quantizeBoth(t, in, ft)
		require.Equal(t, tensorTypes(t, theirs), tensorTypes(t, ours), "%s: per-tensor types (-llama-quantize +ours)", name)
		pOurs, pTheirs := perplexity(t, ours), perplexity(t, theirs)
		t.Logf("%s (%s): perplexity ours %.4f, llama-quantize %.4f", name, ft, pOurs, pTheirs)
		assert.InEpsilon(t, pTheirs, pOurs, 0.01, name)
		// Random weights give a near-uniform distribution over the 32000 tokens.
		assert.InEpsilon(t, 32000, pOurs, 0.2, name)
	}
}

func TestQuantizeModelRoundTrip(t *testing.T) {
	in := initModel(t, factory.Spec{Arch: "qwen2", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 128, VocabSize: 300})
	out := filepath.Join(t.TempDir(), "q8.gguf")
	var progress []quant.Progress
	sum, err := quant.QuantizeModel(context.Background(), in, out, quant.Options{
		Type:     quant.FileTypeQ8_0,
		Progress: func(p quant.Progress) { progress = append(progress, p) },
	})
	require.NoError(t, err)

	src, err := gguf.Open(in)
	require.NoError(t, err)
	defer src.Close()
	dst, err := gguf.Open(out)
	require.NoError(t, err)
	defer dst.Close()

	// Metadata: everything copied, then the two keys llama-quantize sets, last.
	keys := dst.Meta.Keys()
	require.GreaterOrEqual(t, len(keys), 2)
	assert.Equal(t, []string{"general.quantization_version", "general.file_type"}, keys[len(keys)-2:])
	for k, v := range src.Meta.All() {
		if k == "general.file_type" {
			continue
		}
		got, ok := dst.Meta.Get(k)
		require.True(t, ok, k)
		assert.Equal(t, v.Interface(), got.Interface(), k)
	}
	ft, err := dst.Meta.Uint32("general.file_type")
	require.NoError(t, err)
	assert.EqualValues(t, quant.FileTypeQ8_0, ft)
	qv, err := dst.Meta.Uint32("general.quantization_version")
	require.NoError(t, err)
	assert.EqualValues(t, 2, qv)

	// Tensors: same names and shapes; 2-D weights Q8_0 close to the original,
	// 1-D tensors byte-identical.
	require.Len(t, dst.Tensors, len(src.Tensors))
	for _, ti := range src.Tensors {
		got, ok := dst.Tensor(ti.Name)
		require.True(t, ok, ti.Name)
		assert.Equal(t, ti.Dims, got.Dims, ti.Name)
		a, err := src.Data(ti.Name)
		require.NoError(t, err)
		b, err := dst.Data(ti.Name)
		require.NoError(t, err)
		if len(ti.Dims) == 1 {
			assert.Equal(t, gguf.TypeF32, got.Type, ti.Name)
			assert.Equal(t, a, b, ti.Name)
			continue
		}
		assert.Equal(t, gguf.TypeQ8_0, got.Type, ti.Name)
		n, _ := ti.Elements()
		x, err := quant.Dequantize(ggml.TypeF32, a, int(n))
		require.NoError(t, err)
		y, err := quant.Dequantize(ggml.TypeQ8_0, b, int(n))
		require.NoError(t, err)
		e, err := quant.MeasureError(x, y)
		require.NoError(t, err)
		assert.Less(t, e.RelRMS, 0.01, ti.Name)
	}

	// Progress: once per tensor, bytes growing to the total.
	require.Len(t, progress, len(src.Tensors))
	for i, p := range progress {
		assert.Equal(t, i+1, p.Done)
		assert.Equal(t, len(src.Tensors), p.Total)
		if i > 0 {
			assert.Greater(t, p.BytesDone, progress[i-1].BytesDone)
		}
	}
	assert.Equal(t, sum.InBytes, progress[len(progress)-1].BytesDone)

	// Summary: sizes agree with the files and the tensors.
	st, err := os.Stat(out)
	require.NoError(t, err)
	assert.Equal(t, st.Size(), sum.OutFileBytes)
	assert.Equal(t, src.Size, sum.InFileBytes)
	var outBytes int64
	for _, ti := range dst.Tensors {
		n, err := ti.Size()
		require.NoError(t, err)
		outBytes += n
	}
	assert.Equal(t, outBytes, sum.OutBytes)
	before, after := sum.BitsPerWeight()
	assert.InDelta(t, 32, before, 1e-9)
	assert.Less(t, after, 9.0)
}

func TestQuantizeModelCancel(t *testing.T) {
	in := initModel(t, factory.Spec{Arch: "llama", Embd: 64, Layers: 2, Heads: 4, FF: 128, VocabSize: 300})
	dir := t.TempDir()
	out := filepath.Join(dir, "out.gguf")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := quant.QuantizeModel(ctx, in, out, quant.Options{
		Type: quant.FileTypeQ4_0,
		Progress: func(p quant.Progress) {
			if p.Done == 3 {
				cancel()
			}
		},
	})
	require.ErrorIs(t, err, context.Canceled)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "no output and no temporary file left behind")
}

func TestPlanRequantize(t *testing.T) {
	in := initModel(t, factory.Spec{Arch: "llama", Embd: 64, Layers: 1, Heads: 4, FF: 128, VocabSize: 300})
	q4 := filepath.Join(t.TempDir(), "q4.gguf")
	_, err := quant.QuantizeModel(context.Background(), in, q4, quant.Options{Type: quant.FileTypeQ4_0})
	require.NoError(t, err)
	f, err := gguf.Open(q4)
	require.NoError(t, err)
	defer f.Close()
	_, err = quant.Plan(f, quant.Options{Type: quant.FileTypeQ8_0})
	assert.ErrorContains(t, err, "already q4_0")
	s, err := quant.Plan(f, quant.Options{Type: quant.FileTypeQ8_0, AllowRequantize: true})
	require.NoError(t, err)
	for _, tp := range s.Tensors {
		if tp.From == gguf.TypeQ4_0 {
			assert.Equal(t, gguf.TypeQ8_0, tp.To, tp.Name)
		}
	}
	// Same type: nothing to requantize, so no permission needed.
	_, err = quant.Plan(f, quant.Options{Type: quant.FileTypeQ4_0})
	assert.NoError(t, err)
}

func TestPurePlan(t *testing.T) {
	in := initModel(t, factory.Spec{Arch: "llama", Embd: 256, Layers: 2, Heads: 4, FF: 512, VocabSize: 300})
	f, err := gguf.Open(in)
	require.NoError(t, err)
	defer f.Close()
	s, err := quant.Plan(f, quant.Options{Type: quant.FileTypeQ4_K_M, Pure: true})
	require.NoError(t, err)
	for _, tp := range s.Tensors {
		want := gguf.TypeQ4_K
		if len(tp.Dims) == 1 {
			want = gguf.TypeF32
		}
		assert.Equal(t, want, tp.To, tp.Name)
	}
	assert.Zero(t, s.Fallbacks)
	assert.Equal(t, fmt.Sprint(len(f.Tensors)), fmt.Sprint(len(s.Tensors)))
	assert.False(t, math.IsNaN(float64(s.Params)))
}
