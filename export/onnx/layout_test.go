package onnx_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/export/onnx"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/testenv"
)

// f64s reads an F32 tensor as float64.
func f64s(t *testing.T, f *gguf.File, name string) []float64 {
	t.Helper()
	info, ok := f.Tensor(name)
	require.True(t, ok, name)
	require.Equal(t, gguf.TypeF32, info.Type, name)
	data, err := f.Data(name)
	require.NoError(t, err)
	out := make([]float64, len(data)/4)
	for i := range out {
		out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])))
	}
	return out
}

// TestPresentIsHuggingFaceCache: layer 0's present.key and present.value are
// what transformers caches. The expectation is computed here in float64 the
// way llama.cpp computes K (stored rows, RoPE on adjacent pairs), then put in
// Hugging Face's row order by the converter's permutation (GGUF row
// h·D + 2i + j is HF row h·D + j·D/2 + i); V is the plain projection.
func TestPresentIsHuggingFaceCache(t *testing.T) {
	path := testenv.Stories(t)
	model, sum := exportModel(t, path, onnx.Options{KVCache: true})
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	eps, err := f.Meta.Float("llama.attention.layer_norm_rms_epsilon")
	require.NoError(t, err)
	base := 10000.0
	if f.Meta.Has("llama.rope.freq_base") {
		base, err = f.Meta.Float("llama.rope.freq_base")
		require.NoError(t, err)
	}
	embdLen, err := f.Meta.Int("llama.embedding_length")
	require.NoError(t, err)
	E, K, D := int(embdLen), int(sum.KVHeads), int(sum.HeadDim)
	embd, norm := f64s(t, f, "token_embd.weight"), f64s(t, f, "blk.0.attn_norm.weight")
	wk, wv := f64s(t, f, "blk.0.attn_k.weight"), f64s(t, f, "blk.0.attn_v.weight")

	tokens := randomTokens(6, int(sum.Vocab), 12)
	feeds := decoderFeeds(tokens, 0)
	for l := range sum.Layers {
		for _, kv := range []string{"key", "value"} {
			feeds[fmt.Sprintf("past_key_values.%d.%s", l, kv)] = feed{dims: []int64{1, sum.KVHeads, 0, sum.HeadDim}, f32: []float32{}}
		}
	}
	res := ort(t, model, feeds)
	keys, values := res["present.0.key"], res["present.0.value"]
	require.Equal(t, []int64{1, sum.KVHeads, 6, sum.HeadDim}, keys.dims)

	var worstK, worstV, stored, scale float64
	for p, tok := range tokens {
		x := embd[int(tok)*E : (int(tok)+1)*E]
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		r := 1 / math.Sqrt(ss/float64(E)+eps)
		h := make([]float64, E)
		for i := range h {
			h[i] = x[i] * r * norm[i]
		}
		proj := func(w []float64) []float64 { // K·D rows of E
			out := make([]float64, K*D)
			for o := range out {
				for i, v := range h {
					out[o] += w[o*E+i] * v
				}
			}
			return out
		}
		k, v := proj(wk), proj(wv)
		for hd := range K {
			for i := range D / 2 {
				theta := float64(p) * math.Pow(base, -2*float64(i)/float64(D))
				a, b := k[hd*D+2*i], k[hd*D+2*i+1]
				k[hd*D+2*i], k[hd*D+2*i+1] = a*math.Cos(theta)-b*math.Sin(theta), a*math.Sin(theta)+b*math.Cos(theta)
			}
			for j := range 2 {
				for i := range D / 2 {
					got := float64(keys.data[(hd*6+p)*D+j*D/2+i])
					worstK = math.Max(worstK, math.Abs(got-k[hd*D+2*i+j]))
					stored = math.Max(stored, math.Abs(got-k[hd*D+j*D/2+i])) // llama.cpp's row order
					scale = math.Max(scale, math.Abs(k[hd*D+2*i+j]))
				}
			}
			for e := range D {
				worstV = math.Max(worstV, math.Abs(float64(values.data[(hd*6+p)*D+e])-v[hd*D+e]))
			}
		}
	}
	t.Logf("layer 0 cache vs float64 (max |key| %.3g): keys %.2e (%.2e in llama.cpp's row order), values %.2e", scale, worstK, stored, worstV)
	assert.Greater(t, stored, 1e-2*scale, "the row order must matter for the check to mean anything")
	assert.LessOrEqual(t, worstK, 1e-5*scale)
	assert.LessOrEqual(t, worstV, 1e-5*scale)
}
