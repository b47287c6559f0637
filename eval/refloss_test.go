package eval

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/internal/llamaref"
)

// tokenLossesAlone decodes ids one token at a time on a fresh one-sequence context and
// returns, for each i ≥ 1, -log p(ids[i] | ids[:i]) computed directly as
// log(Σ exp l) - l[tok] without the max shift (the logits of this model are small), and
// how far those logits are from libllama's own for the whole sequence in one batch
// (pathSpread).
func tokenLossesAlone(t *testing.T, m *bindings.Model, ids []int32) (losses []float64, spread float64) {
	t.Helper()
	c := newContext(t, m, bindings.ContextOptions{NCtx: 256})
	b, err := bindings.NewBatch(1, 1)
	require.NoError(t, err)
	defer b.Close()
	losses = make([]float64, len(ids))
	alone := make([][]float32, len(ids))
	for i := range ids {
		require.NoError(t, b.Clear())
		require.NoError(t, b.Add(ids[i], int32(i), []int32{0}, true))
		require.NoError(t, c.Decode(b))
		logits, err := c.Logits(0)
		require.NoError(t, err)
		alone[i] = logits
		if i+1 == len(ids) {
			break
		}
		z := 0.0
		for _, l := range logits {
			z += math.Exp(float64(l))
		}
		losses[i+1] = math.Log(z) - float64(logits[ids[i+1]])
	}
	return losses, pathSpread(t, m, ids, alone)
}

// pathSpread returns how far libllama's logits for ids, decoded one token at a time
// (alone), are from its logits for the whole sequence in one batch: the largest absolute
// difference, and never less than half a float32 ulp of the largest logit.
//
// The two are the same F32 model computed by different kernels: one-row products and
// attention for a single query, against tiled products (llamafile's sgemm) and, for
// batches of queries where the head size is a multiple of the vector width, ggml's tiled
// flash attention. Which kernels run depends on the CPU: with head size 8 (this model's)
// an AVX2 build takes the tiled attention (8 floats a vector) and an AVX-512 one does not
// (16), and the single-query kernel rounds queries to F16 for the F16 KV cache while the
// tiled one keeps them in F32. So the spread, measured on the machine that runs the test,
// is what libllama's batching can honestly change a logit by (at most 4.4e-3 on these
// texts, whose logits span about 34, on an AVX-512 EPYC; 3.1e-3 there with llama.cpp built
// for AVX2, where the old fixed bound of 1e-3 on a sequence's sum failed by 0.00186 as it
// did on a Zen 3). A token's loss, log Σ e^l - l[tok], moves by at most twice the largest
// change of a logit.
func pathSpread(t *testing.T, m *bindings.Model, ids []int32, alone [][]float32) float64 {
	t.Helper()
	batch := llamaref.Logits(t, newContext(t, m, bindings.ContextOptions{NCtx: 256}), ids)
	d, _ := llamaref.MaxAbsDiff(llamaref.Flat(batch), llamaref.Flat(alone))
	top := 0.0
	for _, l := range llamaref.Flat(alone) {
		top = math.Max(top, math.Abs(float64(l)))
	}
	return math.Max(d, top*0x1p-24)
}

func TestReferenceLoss(t *testing.T) {
	m := loadStories(t)
	texts := []string{
		"Once upon a time, there was a little girl named Lily.",
		"The dog ran to the park and played with a ball.",
		"Tom had a red car.",
		"One day, Mom said: let us bake a cake!",
		"The bird sang.",
	}
	var seqs []LossSequence
	var want []SequenceLoss
	spread := 0.0 // the largest pathSpread of the texts
	for k, text := range texts {
		ids, err := m.Tokenize(text, true, false)
		require.NoError(t, err)
		// Mask as a prompt/answer split would: the first k+2 tokens are the prompt.
		mask := make([]bool, len(ids))
		var w SequenceLoss
		alone, d := tokenLossesAlone(t, m, ids)
		spread = math.Max(spread, d)
		for i := range ids {
			mask[i] = i >= k+2
			if mask[i] {
				w.Sum += alone[i]
				w.Tokens++
			}
		}
		seqs = append(seqs, LossSequence{IDs: ids, Mask: mask})
		want = append(want, w)
	}

	// ReferenceLoss batches the sequences in other ways again; each target's loss can
	// move by twice the spread of libllama's logits (pathSpread), all in one direction at
	// worst. A bookkeeping error (a target off by one position, a wrong token or
	// position) moves a loss by about a whole nat, and the token counts are exact.
	t.Logf("libllama's logits move by up to %.3g between batchings", spread)
	for _, tc := range []struct {
		name string
		opts bindings.ContextOptions
	}{
		{"two sequences per batch at most", BatchContextOptions(2, 256, 1)},
		{"all in one batch", BatchContextOptions(8, 256, 1)},
		{"batch smaller than a sequence", bindings.ContextOptions{NCtx: 256, NBatch: 8, NSeqMax: 2, KVUnified: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newContext(t, m, tc.opts)
			got, err := ReferenceLoss(context.Background(), c, seqs)
			require.NoError(t, err)
			require.Len(t, got, len(want))
			for i := range want {
				assert.Equal(t, want[i].Tokens, got[i].Tokens, "sequence %d", i)
				assert.InDelta(t, want[i].Sum, got[i].Sum, 2*spread*float64(want[i].Tokens), "sequence %d", i)
			}
		})
	}

	// The token-weighted dataset mean and its perplexity.
	c := newContext(t, m, BatchContextOptions(4, 256, 1))
	got, err := ReferenceLoss(context.Background(), c, seqs)
	require.NoError(t, err)
	var acc LossAccumulator
	sum, n := 0.0, 0
	for i := range got {
		acc.Add(got[i].Sum, float64(got[i].Tokens))
		sum += want[i].Sum
		n += want[i].Tokens
	}
	mean, err := acc.Mean()
	require.NoError(t, err)
	assert.InDelta(t, sum/float64(n), mean, 2*spread)
	// A model trained on such stories is far better than uniform over its 512 tokens.
	assert.Less(t, mean, math.Log(512)/2)

	// An all-false mask scores nothing; mismatched lengths are an error.
	got, err = ReferenceLoss(context.Background(), c, []LossSequence{{IDs: seqs[0].IDs, Mask: make([]bool, len(seqs[0].IDs))}})
	require.NoError(t, err)
	assert.Zero(t, got[0].Tokens)
	assert.True(t, math.IsNaN(got[0].Mean()))
	_, err = ReferenceLoss(context.Background(), c, []LossSequence{{IDs: seqs[0].IDs, Mask: []bool{true}}})
	require.Error(t, err)
}
