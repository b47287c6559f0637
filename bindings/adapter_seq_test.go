package bindings

import (
	"fmt"
	"path/filepath"
	"runtime"
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
	m, c, a, b, run := twoAdapters(t)
	dir := t.TempDir()

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

// twoAdapters is a context of three sequences over stories260K, adapters a (rank 4, alpha
// 8) and b (rank 4, alpha 4), and run, which decodes three prompts and then one more token
// of each (promptsThenOne).
func twoAdapters(t *testing.T) (m *Model, c *Context, a, b *Adapter, run func() (first, second [][]float32)) {
	m = loadStories(t)
	c = newContext(t, m, ContextOptions{NCtx: 3 * 128, NSeqMax: 3})
	dir := t.TempDir()
	pa, pb := filepath.Join(dir, "a.gguf"), filepath.Join(dir, "b.gguf")
	writeLoRA(t, m, pa, 4, 8, 1)
	writeLoRA(t, m, pb, 4, 4, 2)
	var err error
	a, err = LoadAdapter(m, pa)
	require.NoError(t, err)
	b, err = LoadAdapter(m, pb)
	require.NoError(t, err)
	prompts := tokenizeAll(t, m, "Once upon a time", "The little dog ran", "She had a big red ball and")
	return m, c, a, b, func() (first, second [][]float32) { return promptsThenOne(t, c, prompts) }
}

// TestSeqAdaptersStacked: adapters of one rank compute their products in one node a weight
// on x86 (SeqAdaptersStacked; patch 0021's ggml_lora_seq), and every sequence's logits, a
// prompt's and the next token's, are still those of its own adapter applied to the whole
// context, to the bit; a sequence with two adapters turns the stacking off.
func TestSeqAdaptersStacked(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, ContextOptions{NCtx: 4 * 128, NSeqMax: 4, BatchInvariant: true})
	dir := t.TempDir()
	prompts := tokenizeAll(t, m, "Once upon a time", "The little dog ran", "She had a big red ball and", "Lily")
	run := func() (first, second [][]float32) { return promptsThenOne(t, c, prompts) }
	// Ranks of 8-lane and 16-lane products on AVX-512 (8 and 24, 16 and 32), several
	// adapters, and ranks that are no whole number of vectors (4, 12: tinyBLAS refuses
	// them, and both modes take ggml's vec_dot).
	for _, tc := range []struct {
		rank    int64
		n       int
		stacked bool
	}{{8, 3, true}, {8, 2, true}, {16, 2, true}, {24, 3, true}, {24, 2, true}, {32, 2, true}, {4, 2, true}, {12, 3, true}} {
		t.Run(fmt.Sprintf("rank %d × %d", tc.rank, tc.n), func(t *testing.T) {
			adapters := make([]*Adapter, tc.n)
			for i := range adapters {
				p := filepath.Join(dir, fmt.Sprintf("r%d-%d.gguf", tc.rank, i))
				writeLoRA(t, m, p, tc.rank, 12, uint64(10*tc.rank)+uint64(i))
				a, err := LoadAdapter(m, p)
				require.NoError(t, err)
				t.Cleanup(func() { a.Close() })
				adapters[i] = a
			}
			// sequence s on adapter s % n at a scale of its own, the last on the base alone
			scales := make([][]float32, 4)
			own := make([][]AdapterScale, 4)
			for s := range scales {
				scales[s] = make([]float32, tc.n)
				if s < 3 {
					scales[s][s%tc.n] = 0.7 + 0.3*float32(s)
					own[s] = []AdapterScale{{adapters[s%tc.n], scales[s][s%tc.n]}}
				}
			}
			require.NoError(t, c.SetSeqAdapters(adapters, scales))
			assert.Equal(t, tc.stacked && runtime.GOARCH == "amd64", c.SeqAdaptersStacked())
			mixed1, mixed2 := run()
			for s := range own {
				require.NoError(t, c.SetAdapters(own[s]))
				got1, got2 := run()
				assert.Equal(t, got1[s], mixed1[s], "sequence %d, prompt", s)
				assert.Equal(t, got2[s], mixed2[s], "sequence %d, next token", s)
			}
			assert.Greater(t, maxAbsDiff(mixed1[0], mixed1[3]), 1e-3, "the adapters change the logits")

			// A sequence on two adapters turns the stacking off; the others' bits stay.
			scales[3][0], scales[3][1] = 0.5, 1
			require.NoError(t, c.SetSeqAdapters(adapters, scales))
			assert.False(t, c.SeqAdaptersStacked())
			two1, two2 := run()
			for s := range 3 {
				assert.Equal(t, mixed1[s], two1[s], "sequence %d, prompt, unstacked", s)
				assert.Equal(t, mixed2[s], two2[s], "sequence %d, next token, unstacked", s)
			}
			assert.Greater(t, maxAbsDiff(two1[3], mixed1[3]), 1e-3, "sequence 3 now adapted")
			require.NoError(t, c.SetSeqAdapters(nil, nil))
		})
	}
}

// tokenizeAll tokenizes each text, with the model's BOS.
func tokenizeAll(t *testing.T, m *Model, texts ...string) [][]int32 {
	t.Helper()
	out := make([][]int32, len(texts))
	for i, text := range texts {
		var err error
		out[i], err = m.Tokenize(text, true, false)
		require.NoError(t, err)
	}
	return out
}

// promptsThenOne clears c's memory and decodes prompt i as sequence i, all in one batch,
// then one more token for each sequence in a second batch; it returns each sequence's
// last logits of both.
func promptsThenOne(t *testing.T, c *Context, prompts [][]int32) (first, second [][]float32) {
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

// TestTwoAdaptersInOrder: a sequence with two adapters adds their products in the order
// they were given, in both modes, so the per-sequence mode equals the whole-context mode
// to the bit (llama.cpp kept the whole-context adapters in an unordered_map of their
// addresses and summed them in its order, here the reverse: this test failed; ecotune's
// patch 0015 keeps the order set).
func TestTwoAdaptersInOrder(t *testing.T) {
	_, c, a, b, run := twoAdapters(t)

	scales := [][]float32{{1, 0.5}, {0.7, 1.3}, {0.25, 2}}
	require.NoError(t, c.SetSeqAdapters([]*Adapter{a, b}, scales))
	mixed1, mixed2 := run()
	for k, s := range scales {
		require.NoError(t, c.SetAdapters([]AdapterScale{{a, s[0]}, {b, s[1]}}))
		got1, got2 := run()
		assert.Equal(t, got1[k], mixed1[k], "sequence %d, prompt", k)
		assert.Equal(t, got2[k], mixed2[k], "sequence %d, next token", k)
	}
	// The whole-context mode, set again in the same order after another, is the same.
	require.NoError(t, c.SetAdapters([]AdapterScale{{b, scales[0][1]}, {a, scales[0][0]}}))
	run()
	require.NoError(t, c.SetAdapters([]AdapterScale{{a, scales[0][0]}, {b, scales[0][1]}}))
	again1, _ := run()
	assert.Equal(t, mixed1[0], again1[0], "a then b, after b then a")
}
