package trainer

import (
	"testing"

	"github.com/ecotune/ecotune/ggml"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadModelHParams(t *testing.T) {
	m := loadStories(t)
	assert.Equal(t, HParams{Arch: "llama", Vocab: 512, Embd: 64, Layers: 5, Heads: 8, HeadsKV: 4, HeadDim: 8,
		FF: 172, NormEps: 1e-5, RopeDims: 8, RopeBase: 10000, RopeScale: 1, ContextLen: 2048}, m.HP)
	assert.NotNil(t, m.Weight("blk.4.ffn_down.weight"))
	assert.Nil(t, m.Weight("blk.5.ffn_down.weight"))
	require.NoError(t, m.Close())
	require.NoError(t, m.Close())
}

// TestForwardMatchesLibllama compares every position's logits of our forward graph on
// a right-padded batch of two sequences with libllama's on each sequence alone.
func TestForwardMatchesLibllama(t *testing.T) {
	m := loadStories(t)
	ref := newLlamaRef(t, storiesPath)
	s1 := ref.tokenize(t, "Once upon a time, there was a little girl named Lily. She loved to play outside.")
	s2 := ref.tokenize(t, "The cat sat on the mat and")
	T := len(s1)
	require.Greater(t, T, len(s2))
	tokens := make([]int32, 2*T)
	copy(tokens, s1)
	copy(tokens[T:], s2)    // the rest is padding (token 0)
	m.kvType = ggml.TypeF16 // as libllama's default KV cache
	got, err := m.Logits(tokens, 2, T, nil)
	require.NoError(t, err)
	V := m.HP.Vocab
	worst := 0.0
	for s, seq := range [][]int32{s1, s2} {
		want := ref.logits(t, seq)
		for i := range seq {
			row := got[(s*T+i)*V : (s*T+i+1)*V]
			d, rng := maxAbsDiff(row, want[i])
			assert.LessOrEqualf(t, d, 1e-4*rng, "sequence %d position %d: max diff %g, range %g", s, i, d, rng)
			worst = max(worst, d/rng)
		}
	}
	t.Logf("max |ours - libllama| / logit range = %.2e over %d positions", worst, len(s1)+len(s2))
}
