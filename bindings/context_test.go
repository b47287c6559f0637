//go:build cgo

package bindings

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBatchedDecode decodes two sequences in one batch and checks each against the same
// sequence decoded alone.
func TestBatchedDecode(t *testing.T) {
	m := loadStories(t)
	// Batch-invariant, as ecotune decodes: each sequence's logits in a batch are then its
	// logits alone to the bit, which also shows that no row went to another sequence.
	// (llama.cpp's default sums a lone token's products in another order, a difference
	// TestBatchInvariant measures.)
	c := newContext(t, m, ContextOptions{NCtx: 256, NSeqMax: 2, BatchInvariant: true})
	a, err := m.Tokenize("Once upon a time, there was a little girl", true, false)
	require.NoError(t, err)
	b, err := m.Tokenize("The dog ran to the park", true, false)
	require.NoError(t, err)

	aliceA := decodeSeqs(t, c, seqTokens{seq: 0, tokens: a})[0]
	require.NoError(t, c.ClearMemory())
	aloneB := decodeSeqs(t, c, seqTokens{seq: 1, tokens: b})[0]
	require.NoError(t, c.ClearMemory())
	both := decodeSeqs(t, c, seqTokens{seq: 0, tokens: a}, seqTokens{seq: 1, tokens: b})

	require.Len(t, both[0], m.VocabSize())
	assert.Equal(t, aliceA, both[0], "sequence 0")
	assert.Equal(t, aloneB, both[1], "sequence 1")
	assert.Greater(t, maxAbsDiff(both[0], both[1]), 1e-2, "different prompts, different logits")

	// A second step for both sequences in one batch matches single steps too.
	next := decodeSeqs(t, c, seqTokens{seq: 0, tokens: []int32{a[1]}, pos0: int32(len(a))},
		seqTokens{seq: 1, tokens: []int32{b[1]}, pos0: int32(len(b))})
	require.NoError(t, c.ClearMemory())
	decodeSeqs(t, c, seqTokens{seq: 0, tokens: a})
	stepA := decodeSeqs(t, c, seqTokens{seq: 0, tokens: []int32{a[1]}, pos0: int32(len(a))})[0]
	assert.Equal(t, stepA, next[0])
}

// TestSharedPrefix shares a decoded prompt between sequences with SeqCopy.
func TestSharedPrefix(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, ContextOptions{NCtx: 256, NSeqMax: 2})
	p, err := m.Tokenize("Once upon a time", true, false)
	require.NoError(t, err)
	decodeSeqs(t, c, seqTokens{seq: 0, tokens: p})
	require.NoError(t, c.SeqCopy(0, 1, -1, -1))
	lo, hi, err := c.SeqPosRange(1)
	require.NoError(t, err)
	assert.Equal(t, int32(0), lo)
	assert.Equal(t, int32(len(p)-1), hi)

	tok := int32(29892) % int32(m.VocabSize())
	got := decodeSeqs(t, c, seqTokens{seq: 1, tokens: []int32{tok}, pos0: int32(len(p))})[0]
	require.NoError(t, c.ClearMemory())
	want := decodeSeqs(t, c, seqTokens{seq: 0, tokens: append(append([]int32(nil), p...), tok)})[0]
	assert.LessOrEqual(t, maxAbsDiff(want, got), 1e-4)
}

func TestMemoryAndState(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, ContextOptions{NCtx: 256, NSeqMax: 2})
	a, err := m.Tokenize("Once upon a time, there was", true, false)
	require.NoError(t, err)
	b, err := m.Tokenize("One day, a cat", true, false)
	require.NoError(t, err)
	decodeSeqs(t, c, seqTokens{seq: 0, tokens: a}, seqTokens{seq: 1, tokens: b})

	// Save both sequences at once, continue, then restore and continue again: same logits.
	states, err := c.SeqStates(0, 1)
	require.NoError(t, err)
	require.Len(t, states, 2)
	assert.NotEmpty(t, states[0].Data)
	whole, err := c.State()
	require.NoError(t, err)

	step := func() [][]float32 {
		return decodeSeqs(t, c, seqTokens{seq: 0, tokens: []int32{a[2]}, pos0: int32(len(a))},
			seqTokens{seq: 1, tokens: []int32{b[2]}, pos0: int32(len(b))})
	}
	first := step()
	require.NoError(t, c.ClearMemory())
	_, hi, err := c.SeqPosRange(0)
	require.NoError(t, err)
	assert.Equal(t, int32(-1), hi, "cleared")
	require.NoError(t, c.SetSeqStates(states...))
	_, hi, err = c.SeqPosRange(1)
	require.NoError(t, err)
	assert.Equal(t, int32(len(b)-1), hi)
	again := step()
	assert.LessOrEqual(t, maxAbsDiff(first[0], again[0]), 1e-4)
	assert.LessOrEqual(t, maxAbsDiff(first[1], again[1]), 1e-4)

	// The same through a fresh context restored from the whole state.
	c2 := newContext(t, m, ContextOptions{NCtx: 256, NSeqMax: 2})
	require.NoError(t, c2.SetState(whole))
	third := decodeSeqs(t, c2, seqTokens{seq: 0, tokens: []int32{a[2]}, pos0: int32(len(a))},
		seqTokens{seq: 1, tokens: []int32{b[2]}, pos0: int32(len(b))})
	assert.LessOrEqual(t, maxAbsDiff(first[0], third[0]), 1e-4)

	// Removing the step just decoded and redoing it gives the same logits.
	require.NoError(t, c.SeqRemove(0, int32(len(a)), -1))
	redo := decodeSeqs(t, c, seqTokens{seq: 0, tokens: []int32{a[2]}, pos0: int32(len(a))})
	assert.LessOrEqual(t, maxAbsDiff(first[0], redo[0]), 1e-4)

	require.NoError(t, c.SeqKeep(1))
	_, hi, err = c.SeqPosRange(0)
	require.NoError(t, err)
	assert.Equal(t, int32(-1), hi)
	require.NoError(t, c.SeqRemove(-1, -1, -1))

	// Sequence ids beyond NSeqMax are refused in Go (llama.cpp would abort).
	assert.Error(t, c.SeqRemove(2, -1, -1))
	assert.Error(t, c.SeqCopy(0, 5, -1, -1))
	_, err = c.SeqStates(7)
	assert.Error(t, err)
	_, _, err = c.SeqPosRange(-1)
	assert.Error(t, err)
}

func TestDecodeErrors(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, ContextOptions{NCtx: 256, NBatch: 64})
	b, err := NewBatch(128, 2)
	require.NoError(t, err)
	defer b.Close()

	assert.Error(t, c.Decode(b), "empty batch")
	require.NoError(t, b.Add(int32(m.VocabSize()), 0, []int32{0}, true))
	assert.ErrorContains(t, c.Decode(b), "outside the vocabulary")
	b.Clear()
	require.NoError(t, b.Add(1, 0, []int32{1}, true))
	assert.ErrorContains(t, c.Decode(b), "sequence id 1")
	b.Clear()
	for i := range 65 {
		require.NoError(t, b.Add(1, int32(i), []int32{0}, false))
	}
	assert.ErrorContains(t, c.Decode(b), "exceeds NBatch")
	assert.Error(t, b.Add(1, 0, nil, false), "a token needs a sequence")
	assert.Error(t, b.Add(1, 0, []int32{0, 1, 2}, false), "more sequences than the batch holds")
	assert.Error(t, b.SetLogits(500, true))

	// Logits are only readable for outputs the last Decode produced.
	b.Clear()
	for i := range 4 {
		require.NoError(t, b.Add(1, int32(i), []int32{0}, i == 1))
	}
	require.NoError(t, c.Decode(b))
	_, err = c.Logits(1)
	assert.NoError(t, err)
	_, err = c.Logits(-1)
	assert.NoError(t, err)
	_, err = c.Logits(3)
	assert.ErrorContains(t, err, "no output")
	_, err = c.Logits(-2)
	assert.Error(t, err)
	_, err = c.Embeddings(1)
	assert.Error(t, err, "embeddings not enabled")

	// Filling the context: llama_decode's "no KV slot" becomes ErrKVCacheFull.
	require.NoError(t, c.ClearMemory())
	pos := int32(0)
	for pos < int32(c.NCtx()) {
		b.Clear()
		for i := 0; i < c.NBatch() && pos < int32(c.NCtx()); i++ {
			require.NoError(t, b.Add(1, pos, []int32{0}, false))
			pos++
		}
		require.NoError(t, c.Decode(b))
	}
	b.Clear()
	require.NoError(t, b.Add(1, pos, []int32{0}, true))
	assert.ErrorIs(t, c.Decode(b), ErrKVCacheFull)
}

func TestEmbeddings(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, ContextOptions{NCtx: 256, Embeddings: true})
	p, err := m.Tokenize("Once upon a time", true, false)
	require.NoError(t, err)
	decodeSeqs(t, c, seqTokens{seq: 0, tokens: p})
	e, err := c.Embeddings(-1)
	require.NoError(t, err)
	assert.Len(t, e, m.NEmbd())
}

func TestModelInfo(t *testing.T) {
	m := loadStories(t)
	assert.Equal(t, "llama", m.Arch())
	assert.Equal(t, 64, m.NEmbd())
	assert.Equal(t, 5, m.NLayer())
	assert.Equal(t, 8, m.NHead())
	assert.Equal(t, 4, m.NHeadKV())
	assert.Equal(t, 512, m.VocabSize())
	assert.Equal(t, 2048, m.NCtxTrain())
	assert.Equal(t, int32(1), m.BOS())
	assert.Equal(t, int32(2), m.EOS())
	assert.True(t, m.AddBOS())
	assert.InDelta(t, 293_000, float64(m.NParams()), 1_000)
	assert.NotEmpty(t, m.Description())
	assert.Equal(t, "5", m.Meta("llama.block_count"))
	assert.Equal(t, "", m.Meta("no.such.key"))
	assert.Equal(t, "llama", m.Metadata()["general.architecture"])
	assert.Equal(t, "", m.ChatTemplate())
	txt, err := m.TokenText(1)
	require.NoError(t, err)
	assert.Equal(t, "<s>", txt)
	assert.True(t, m.IsControl(1))
	assert.NotEmpty(t, Version())
	assert.NotEmpty(t, SystemInfo())
	assert.True(t, SupportsMmap())
	_ = SupportsGPUOffload()

	// Options: no mmap, progress reported up to 1, and a progress callback can cancel.
	var last float32
	m2, err := LoadModel(storiesPath, ModelOptions{NoMmap: true, Progress: func(f float32) bool { last = f; return true }})
	require.NoError(t, err)
	assert.Equal(t, float32(1), last)
	require.NoError(t, m2.Close())
	_, err = LoadModel(storiesPath, ModelOptions{Progress: func(float32) bool { return false }})
	assert.ErrorContains(t, err, "cancelled")

	// A vocabulary-only model tokenizes but cannot decode.
	v, err := LoadModel(storiesPath, ModelOptions{VocabOnly: true})
	require.NoError(t, err)
	defer v.Close()
	toks, err := v.Tokenize("Once upon a time", true, false)
	require.NoError(t, err)
	assert.NotEmpty(t, toks)
	_, err = NewContext(v, ContextOptions{})
	assert.ErrorContains(t, err, "VocabOnly")
}

// TestLogitsInPlace: the logits a Decode leaves in the backend's output tensor (ecotune's
// llama.cpp patch 0020: when one graph computes all of a batch's outputs) are those the
// copy into the context's buffer gives (when outputs come from several graphs), to the
// bit. The prompt takes 4 micro-batches of 8 tokens. Asking for every token's logits
// copies each micro-batch's; asking for the last token's alone leaves the last
// micro-batch's in place; asking for the 3rd token's alone leaves the first micro-batch's
// in place, and they must be copied before the next three graphs reuse that memory.
func TestLogitsInPlace(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, ContextOptions{NCtx: 128, NBatch: 64, NUBatch: 8, BatchInvariant: true})
	prompt, err := m.Tokenize("Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her", true, false)
	require.NoError(t, err)
	require.Greater(t, len(prompt), 24, "the prompt must span 4 micro-batches")
	prompt = prompt[:min(len(prompt), 32)]

	decode := func(outputs func(i int) bool) {
		t.Helper()
		require.NoError(t, c.ClearMemory())
		b, err := NewBatch(len(prompt), 1)
		require.NoError(t, err)
		defer b.Close()
		for i, tok := range prompt {
			require.NoError(t, b.Add(tok, int32(i), []int32{0}, outputs(i)))
		}
		require.NoError(t, c.Decode(b))
	}
	logits := func(i int) []float32 {
		t.Helper()
		l, err := c.Logits(i)
		require.NoError(t, err)
		return l
	}

	decode(func(int) bool { return true })
	last, third := logits(len(prompt)-1), logits(2)
	assert.Greater(t, maxAbsDiff(last, third), 1e-2, "different tokens, different logits")

	decode(func(i int) bool { return i == len(prompt)-1 })
	assert.Equal(t, last, logits(len(prompt)-1), "the last token's logits, left in place")
	decode(func(i int) bool { return i == 2 })
	assert.Equal(t, third, logits(2), "the 3rd token's logits, kept across three more graphs")
}
