package onnx_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/export/onnx"
	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/quant"
)

// relTol is the bound on max |ONNX − llama.cpp| / (logit range) for F32 models.
const relTol = 1e-3

// randomTokens returns n token ids below vocab, fixed by seed.
func randomTokens(n, vocab int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 3))
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(r.IntN(vocab))
	}
	return out
}

// TestExportMatchesLlamaCpp: the exported graph, run in onnxruntime, gives
// llama.cpp's logits (libllama through package bindings) at every position,
// for random llama and qwen2 models of several shapes and the real stories260K.
func TestExportMatchesLlamaCpp(t *testing.T) {
	cases := []struct {
		name  string
		spec  factory.Spec
		vocab string
		tol   float64
	}{
		{"llama gqa", factory.Spec{Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 128}, "llama-spm", relTol},
		{"llama tied mqa head_dim 32", factory.Spec{Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 1, HeadDim: 32, FF: 96, TiedEmbeddings: true}, "llama-spm", relTol},
		// llama.cpp multiplies F16 weights with activations rounded to F16,
		// the export with exact F16 weights in F32 arithmetic.
		{"llama f16", factory.Spec{Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 128, Type: gguf.TypeF16}, "llama-spm", 3e-3},
		{"qwen2 gqa tied biases", factory.Spec{Arch: "qwen2", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 128, TiedEmbeddings: true}, "qwen2", relTol},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := c.spec
			spec.VocabFile = testenv.Vocab(t, c.vocab)
			spec.Seed, spec.Std = 5, 0.1
			b, err := factory.Build(spec)
			require.NoError(t, err)
			// The factory's biases are zero; random ones check that they are used.
			for i, tt := range b.Tensors {
				if filepath.Ext(tt.Name) == ".bias" {
					b.Tensors[i].Data = gguf.DataBytes(randomF32(int(tt.Dims[0]), 0.5, uint64(i)))
				}
			}
			path := filepath.Join(t.TempDir(), "model.gguf")
			require.NoError(t, b.WriteFile(path))
			compareWithLlamaCpp(t, path, onnx.Options{}, 24, c.tol)
		})
	}
	t.Run("stories260K", func(t *testing.T) {
		compareWithLlamaCpp(t, testenv.Stories(t), onnx.Options{}, 48, relTol)
	})
}

// compareWithLlamaCpp exports path, runs n random tokens through both, and
// asserts the logits agree within tol of their range.
func compareWithLlamaCpp(t *testing.T, path string, opts onnx.Options, n int, tol float64) (string, []int32, []float32) {
	t.Helper()
	model, sum := exportModel(t, path, opts)
	tokens := randomTokens(n, int(sum.Vocab), 9)
	want := llamaLogits(t, path, tokens)
	got := ort(t, model, decoderFeeds(tokens, 0))["logits"]
	require.Equal(t, []int64{1, int64(n), sum.Vocab}, got.dims)
	d, rng := maxAbsDiff(got.data, want)
	t.Logf("%s (%s): %d tokens, vocab %d: max |ONNX - llama.cpp| %.3g, logit range %.3g, relative %.2e", t.Name(), filepath.Base(path), n, sum.Vocab, d, rng, d/rng)
	assert.LessOrEqual(t, d, tol*rng)
	assert.Greater(t, rng, 1.0, "logits must vary for the comparison to mean anything")
	return model, tokens, want
}

// TestExportQuantized: a Q8_0 model is dequantized with ggml's converters
// (package quant, given as Options.Dequantize). Its graph gives the logits
// llama.cpp computes for the same weights stored as F32 (the Q8_0 model
// dequantized by llama-quantize's rules), within the F32 bound. llama.cpp on
// the Q8_0 file itself also quantizes the activations to Q8_0, which the F32
// graph does not, so that comparison gets a wider bound.
func TestExportQuantized(t *testing.T) {
	dir := t.TempDir()
	q8, f32 := filepath.Join(dir, "stories-q8_0.gguf"), filepath.Join(dir, "stories-q8_0-f32.gguf")
	_, err := quant.QuantizeModel(context.Background(), testenv.Stories(t), q8, quant.Options{Type: quant.FileTypeQ8_0})
	require.NoError(t, err)
	_, err = quant.QuantizeModel(context.Background(), q8, f32, quant.Options{Type: quant.FileTypeF32, AllowRequantize: true})
	require.NoError(t, err)
	_, err = onnx.Export(context.Background(), onnx.Options{Model: q8, Out: filepath.Join(dir, "m.onnx")})
	require.ErrorContains(t, err, "q8_0; quantized weights need a dequantizer")

	deq := func(typ gguf.Type, data []byte, n int) ([]float32, error) {
		return quant.Dequantize(ggml.Type(typ), data, n)
	}
	model, tokens, _ := compareWithLlamaCpp(t, q8, onnx.Options{Dequantize: deq}, 48, 1e-2)
	got := ort(t, model, decoderFeeds(tokens, 0))["logits"].data
	d, rng := maxAbsDiff(got, llamaLogits(t, f32, tokens))
	t.Logf("Q8_0 export vs llama.cpp on the dequantized F32 weights: max |diff| %.3g, range %.3g, relative %.2e", d, rng, d/rng)
	assert.LessOrEqual(t, d, relTol*rng)
}
