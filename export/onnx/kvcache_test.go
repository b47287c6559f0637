package onnx_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/export/onnx"
	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/internal/testenv"
)

// gqaModel writes a random llama model with grouped-query attention.
func gqaModel(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gqa.gguf")
	require.NoError(t, factory.Init(factory.Spec{Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 128,
		VocabFile: testenv.Vocab(t, "llama-spm"), Seed: 7, Std: 0.1}, path))
	return path
}

// TestKVCacheMatchesFullSequence: the KV-cache variant fed a prefix with an
// empty past, then one token, then the rest, each time with the previous
// present as past, gives the full-sequence model's logits at every position.
func TestKVCacheMatchesFullSequence(t *testing.T) {
	for name, path := range map[string]func(testing.TB) string{"stories260K": testenv.Stories, "llama gqa": gqaModel} {
		t.Run(name, func(t *testing.T) {
			path := path(t)
			full, sum := exportModel(t, path, onnx.Options{})
			cached, kvSum := exportModel(t, path, onnx.Options{KVCache: true})
			assert.Equal(t, []string{"logits"}, sum.Outputs)
			require.Len(t, kvSum.Inputs, 3+2*int(kvSum.Layers))
			assert.Equal(t, "past_key_values.0.key", kvSum.Inputs[3])
			assert.Equal(t, "present.0.value", kvSum.Outputs[2])

			tokens := randomTokens(20, int(sum.Vocab), 4)
			want := ort(t, full, decoderFeeds(tokens, 0))["logits"].data

			K, D := kvSum.KVHeads, kvSum.HeadDim
			past := map[string]feed{}
			for l := range kvSum.Layers {
				for _, kv := range []string{"key", "value"} {
					past[fmt.Sprintf("past_key_values.%d.%s", l, kv)] = feed{dims: []int64{1, K, 0, D}, f32: []float32{}}
				}
			}
			var got []float32
			start := 0
			for _, end := range []int{12, 13, 20} {
				feeds := decoderFeeds(tokens[start:end], int64(start))
				for k, v := range past {
					feeds[k] = v
				}
				res := ort(t, cached, feeds)
				got = append(got, res["logits"].data...)
				for l := range kvSum.Layers {
					for _, kv := range []string{"key", "value"} {
						p := res[fmt.Sprintf("present.%d.%s", l, kv)]
						require.Equal(t, []int64{1, K, int64(end), D}, p.dims)
						past[fmt.Sprintf("past_key_values.%d.%s", l, kv)] = feed{dims: p.dims, f32: p.data}
					}
				}
				start = end
			}
			d, rng := maxAbsDiff(got, want)
			t.Logf("%s: 12 + 1 + 7 tokens through the cache vs 20 at once: max |diff| %.3g, range %.3g, relative %.2e", name, d, rng, d/rng)
			assert.LessOrEqual(t, d, 1e-5*rng)
		})
	}
}

// TestAttentionMaskPadding: a left-padded row of a batch gives the logits of
// the same tokens alone.
func TestAttentionMaskPadding(t *testing.T) {
	model, sum := exportModel(t, testenv.Stories(t), onnx.Options{})
	tokens := randomTokens(8, int(sum.Vocab), 6)
	alone := ort(t, model, decoderFeeds(tokens[:5], 0))["logits"].data
	// Row 0: 8 tokens; row 1: 3 pads (token 0, mask 0) then the first 5.
	ids := make([]int64, 16)
	mask := make([]int64, 16)
	pos := make([]int64, 16)
	for i := range 8 {
		ids[i], mask[i], pos[i] = int64(tokens[i]), 1, int64(i)
		if i >= 3 {
			ids[8+i], mask[8+i], pos[8+i] = int64(tokens[i-3]), 1, int64(i-3)
		}
	}
	res := ort(t, model, map[string]feed{
		"input_ids": {dims: []int64{2, 8}, i64: ids}, "attention_mask": {dims: []int64{2, 8}, i64: mask}, "position_ids": {dims: []int64{2, 8}, i64: pos},
	})["logits"]
	require.Equal(t, []int64{2, 8, sum.Vocab}, res.dims)
	V := int(sum.Vocab)
	padded := res.data[(8+3)*V : 16*V]
	d, rng := maxAbsDiff(padded, alone)
	assert.LessOrEqual(t, d, 1e-5*rng, "padded row vs alone: max |diff| %g, range %g", d, rng)
	d, _ = maxAbsDiff(res.data[:5*V], alone)
	assert.LessOrEqual(t, d, 1e-5*rng, "unpadded row vs alone")
}

// TestExternalData: weights in model.onnx.data give the same logits as inline ones.
func TestExternalData(t *testing.T) {
	stories := testenv.Stories(t)
	inline, sum := exportModel(t, stories, onnx.Options{})
	external, extSum := exportModel(t, stories, onnx.Options{ExternalData: true})
	assert.Empty(t, sum.DataFile)
	require.Equal(t, external+".data", extSum.DataFile)
	st, err := os.Stat(external)
	require.NoError(t, err)
	data, err := os.Stat(extSum.DataFile)
	require.NoError(t, err)
	assert.Less(t, st.Size(), data.Size()/4, "the weights are in the data file")
	assert.Equal(t, os.FileMode(0o644), st.Mode().Perm())
	assert.Equal(t, os.FileMode(0o644), data.Mode().Perm())
	assert.Equal(t, extSum.Bytes, st.Size()+data.Size())
	feeds := decoderFeeds(randomTokens(10, int(sum.Vocab), 8), 0)
	assert.Equal(t, ort(t, inline, feeds)["logits"].data, ort(t, external, feeds)["logits"].data)
}
