package eval

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
)

// tokenLossesAlone decodes ids one token at a time on a fresh one-sequence context and
// returns, for each i ≥ 1, -log p(ids[i] | ids[:i]) computed directly as
// log(Σ exp l) - l[tok] without the max shift (the logits of this model are small).
func tokenLossesAlone(t *testing.T, m *bindings.Model, ids []int32) []float64 {
	t.Helper()
	c := newContext(t, m, bindings.ContextOptions{NCtx: 256})
	b, err := bindings.NewBatch(1, 1)
	require.NoError(t, err)
	defer b.Close()
	out := make([]float64, len(ids))
	for i := 0; i+1 < len(ids); i++ {
		require.NoError(t, b.Clear())
		require.NoError(t, b.Add(ids[i], int32(i), []int32{0}, true))
		require.NoError(t, c.Decode(b))
		logits, err := c.Logits(0)
		require.NoError(t, err)
		z := 0.0
		for _, l := range logits {
			z += math.Exp(float64(l))
		}
		out[i+1] = math.Log(z) - float64(logits[ids[i+1]])
	}
	return out
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
	for k, text := range texts {
		ids, err := m.Tokenize(text, true, false)
		require.NoError(t, err)
		// Mask as a prompt/answer split would: the first k+2 tokens are the prompt.
		mask := make([]bool, len(ids))
		var w SequenceLoss
		alone := tokenLossesAlone(t, m, ids)
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
				assert.InDelta(t, want[i].Sum, got[i].Sum, 1e-3, "sequence %d", i)
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
	assert.InDelta(t, sum/float64(n), mean, 1e-4)
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
