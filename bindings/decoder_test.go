//go:build cgo

package bindings

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDecoderThread decodes a prompt and a few greedy steps with every decode on the
// context's decoder thread and on the caller's (onCaller), and
// compares the logits to the bit; a decode error comes back through the thread too, and
// Close joins it.
func TestDecoderThread(t *testing.T) {
	m := loadStories(t)
	prompt, err := m.Tokenize("Once upon a time, there was a little girl", true, false)
	require.NoError(t, err)
	run := func(onCaller bool) (logits [][]float32, started bool) {
		c := newContext(t, m, ContextOptions{NCtx: 256, BatchInvariant: true})
		c.onCaller = onCaller
		b, err := NewBatch(64, 1)
		require.NoError(t, err)
		defer b.Close()
		tokens := prompt
		for step := range 4 {
			b.Clear()
			for i, tok := range tokens {
				require.NoError(t, b.Add(tok, int32(len(prompt)+step-len(tokens)+i), []int32{0}, i == len(tokens)-1))
			}
			require.NoError(t, c.Decode(b))
			l, err := c.Logits(len(tokens) - 1)
			require.NoError(t, err)
			logits = append(logits, slices.Clone(l))
			tokens = []int32{argmax(l)}
			if step == 0 {
				tokens[0] = prompt[1] // a fixed continuation: position len(prompt)
			}
		}
		// A failing decode (a position far past the context) reports its error.
		b.Clear()
		require.NoError(t, b.Add(prompt[1], 100000, []int32{0}, true))
		assert.Error(t, c.Decode(b))
		started = c.dec != nil
		require.NoError(t, c.Close())
		assert.Nil(t, c.dec, "Close stops the decoder thread")
		return logits, started
	}
	onThread, started := run(false)
	require.True(t, started, "a context decodes on its decoder thread")
	onCaller, started := run(true)
	require.False(t, started)
	require.Len(t, onThread, 4)
	for i := range onThread {
		assert.True(t, slices.Equal(onThread[i], onCaller[i]), "step %d: logits on the decoder thread and on the caller's", i)
	}
}
