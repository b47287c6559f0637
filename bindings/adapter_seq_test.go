package bindings

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSeqAdapters decodes three sequences in one batch with adapters set per sequence
// (a at 1, b at 0.5, none), twice (a prompt, then one more token each), and checks each
// sequence's logits against the same batch with that sequence's own adapters applied to
// the whole context: equal to the bit, as each token adds every adapter's product times
// its own scale and the others' times 0.
func TestSeqAdapters(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, ContextOptions{NCtx: 3 * 128, NSeqMax: 3})
	dir := t.TempDir()
	pa, pb := filepath.Join(dir, "a.gguf"), filepath.Join(dir, "b.gguf")
	writeLoRA(t, m, pa, 4, 8, 1)
	writeLoRA(t, m, pb, 4, 4, 2)
	a, err := LoadAdapter(m, pa)
	require.NoError(t, err)
	b, err := LoadAdapter(m, pb)
	require.NoError(t, err)

	var prompts [3][]int32
	for i, text := range []string{"Once upon a time", "The little dog ran", "She had a big red ball and"} {
		prompts[i], err = m.Tokenize(text, true, false)
		require.NoError(t, err)
	}
	// run decodes the prompts, then one more token for each sequence, in two batches.
	run := func() (first, second [][]float32) {
		t.Helper()
		require.NoError(t, c.ClearMemory())
		var seqs []seqTokens
		for i, p := range prompts {
			seqs = append(seqs, seqTokens{seq: int32(i), tokens: p})
		}
		first = decodeSeqs(t, c, seqs...)
		for i, p := range prompts {
			seqs[i] = seqTokens{seq: int32(i), tokens: []int32{p[1]}, pos0: int32(len(p))}
		}
		return first, decodeSeqs(t, c, seqs...)
	}

	require.NoError(t, c.SetSeqAdapters([]*Adapter{a, b}, [][]float32{{1, 0}, {0, 0.5}, {0, 0}}))
	mixed1, mixed2 := run()
	for k, own := range [][]AdapterScale{{{a, 1}}, {{b, 0.5}}, nil} {
		require.NoError(t, c.SetAdapters(own))
		got1, got2 := run()
		assert.Equal(t, got1[k], mixed1[k], "sequence %d, prompt", k)
		assert.Equal(t, got2[k], mixed2[k], "sequence %d, next token", k)
	}
	assert.Greater(t, maxAbsDiff(mixed1[0], mixed1[2]), 1e-3, "the adapters change the logits")

	// New scales for the same adapters keep llama.cpp's graph; a sequence's scale moves.
	require.NoError(t, c.SetSeqAdapters([]*Adapter{a, b}, [][]float32{{0, 0.5}, {0, 0.5}, {1, 0}}))
	swapped1, _ := run()
	assert.Equal(t, mixed1[1], swapped1[1], "sequence 1 kept b at 0.5")
	require.NoError(t, c.SetAdapters([]AdapterScale{{a, 1}}))
	own1, _ := run()
	assert.Equal(t, own1[2], swapped1[2], "sequence 2 now on a")

	// Closing an adapter in use leaves the mode.
	require.NoError(t, c.SetSeqAdapters([]*Adapter{a, b}, [][]float32{{1, 0}, {0, 1}, {0, 0}}))
	require.NoError(t, b.Close())
	require.NoError(t, c.SetAdapters(nil))
	base1, _ := run()
	require.NoError(t, c.SetSeqAdapters([]*Adapter{a}, [][]float32{{0}, {0}, {0}}))
	zero1, _ := run()
	assert.Equal(t, base1, zero1, "every scale 0: the base model")

	assert.ErrorContains(t, c.SetSeqAdapters([]*Adapter{a}, [][]float32{{1}}), "rows of scales for 3 sequences")
	assert.ErrorContains(t, c.SetSeqAdapters([]*Adapter{a, a}, [][]float32{{1, 0}, {0, 0}, {0, 0}}), "listed twice")
	assert.ErrorContains(t, c.SetSeqAdapters([]*Adapter{a}, [][]float32{{1}, {1, 2}, {0}}), "sequence 1 has 2 scales")
	assert.ErrorIs(t, c.SetSeqAdapters([]*Adapter{b}, [][]float32{{1}, {0}, {0}}), ErrClosed)
	require.NoError(t, c.SetSeqAdapters(nil, nil), "leaving the mode")

	// An adapter whose weights differ in rank has no one alpha/rank scale per token.
	pm := filepath.Join(dir, "mixed-ranks.gguf")
	writeLoRARanks(t, m, pm, []int64{4, 2, 2}, 8, 3)
	mixedRanks, err := LoadAdapter(m, pm)
	require.NoError(t, err)
	assert.ErrorContains(t, c.SetSeqAdapters([]*Adapter{a, mixedRanks}, [][]float32{{1, 0}, {0, 1}, {0, 0}}), "differ in rank")
	require.NoError(t, c.SetAdapters([]AdapterScale{{mixedRanks, 1}}), "the whole-context mode takes it")
}
