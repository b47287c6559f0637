//go:build cgo

package bindings

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCloseTwiceAndUseAfterClose closes every owner twice and checks that use afterwards
// returns ErrClosed instead of reaching freed C memory.
func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	requireStories(t)
	m, err := LoadModel(storiesPath, ModelOptions{})
	require.NoError(t, err)
	adapterPath := filepath.Join(t.TempDir(), "lora.gguf")
	writeLoRA(t, m, adapterPath, 2, 2, 5)

	c, err := NewContext(m, ContextOptions{NCtx: 256, Threads: 1})
	require.NoError(t, err)
	s, err := NewSampler(m, SamplerOptions{})
	require.NoError(t, err)
	b, err := NewBatch(8, 1)
	require.NoError(t, err)
	a, err := LoadAdapter(m, adapterPath)
	require.NoError(t, err)
	require.NoError(t, c.SetAdapters([]AdapterScale{{a, 1}}))

	t.Run("batch", func(t *testing.T) {
		require.NoError(t, b.Close())
		require.NoError(t, b.Close())
		assert.ErrorIs(t, b.Add(1, 0, []int32{0}, true), ErrClosed)
		assert.ErrorIs(t, b.Clear(), ErrClosed)
		assert.ErrorIs(t, b.SetLogits(0, true), ErrClosed)
		assert.Equal(t, 0, b.Len())
		assert.ErrorIs(t, c.Decode(b), ErrClosed)
	})

	t.Run("sampler", func(t *testing.T) {
		require.NoError(t, s.Close())
		require.NoError(t, s.Close())
		_, err := s.Sample(c, -1)
		assert.ErrorIs(t, err, ErrClosed)
		assert.ErrorIs(t, s.Accept(1), ErrClosed)
		assert.ErrorIs(t, s.Reset(), ErrClosed)
	})

	t.Run("adapter", func(t *testing.T) {
		require.NoError(t, a.Close())
		require.NoError(t, a.Close())
		assert.Empty(t, c.Adapters(), "closing detached it from the context")
		assert.ErrorIs(t, c.SetAdapters([]AdapterScale{{a, 1}}), ErrClosed)
	})

	t.Run("model closes its context", func(t *testing.T) {
		require.NoError(t, m.Close())
		require.NoError(t, m.Close())
		_, err := m.Tokenize("x", false, false)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = m.TokenToPiece(1, false)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = m.Detokenize([]int32{1}, false, false)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = m.TokenText(1)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = NewContext(m, ContextOptions{})
		assert.ErrorIs(t, err, ErrClosed)
		_, err = NewSampler(m, SamplerOptions{})
		assert.ErrorIs(t, err, ErrClosed)
		_, err = LoadAdapter(m, adapterPath)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = m.ApplyChatTemplate(nil, true)
		assert.ErrorIs(t, err, ErrClosed)
		assert.False(t, m.IsEOG(m.EOS()))
		assert.Equal(t, "llama", m.Arch(), "cached information stays readable")

		b2, err := NewBatch(1, 1)
		require.NoError(t, err)
		defer b2.Close()
		require.NoError(t, b2.Add(1, 0, []int32{0}, true))
		assert.ErrorIs(t, c.Decode(b2), ErrClosed)
		_, err = c.Logits(-1)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = c.Embeddings(-1)
		assert.ErrorIs(t, err, ErrClosed)
		assert.ErrorIs(t, c.ClearMemory(), ErrClosed)
		assert.ErrorIs(t, c.SeqRemove(0, -1, -1), ErrClosed)
		assert.ErrorIs(t, c.SeqCopy(0, 0, -1, -1), ErrClosed)
		assert.ErrorIs(t, c.SeqKeep(0), ErrClosed)
		assert.ErrorIs(t, c.SeqShift(0, -1, -1, 1), ErrClosed)
		_, _, err = c.SeqPosRange(0)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = c.State()
		assert.ErrorIs(t, err, ErrClosed)
		assert.ErrorIs(t, c.SetState([]byte{1}), ErrClosed)
		_, err = c.SeqStates(0)
		assert.ErrorIs(t, err, ErrClosed)
		assert.ErrorIs(t, c.SetThreads(1, 1), ErrClosed)
		assert.ErrorIs(t, c.ClearAdapters(), ErrClosed)
		require.NoError(t, c.Close())
		require.NoError(t, c.Close())
	})

	t.Run("nil owners", func(t *testing.T) {
		assert.NoError(t, (*Model)(nil).Close())
		assert.NoError(t, (*Context)(nil).Close())
		assert.NoError(t, (*Sampler)(nil).Close())
		assert.NoError(t, (*Batch)(nil).Close())
		assert.NoError(t, (*Adapter)(nil).Close())
		_, err := (*Model)(nil).Tokenize("x", false, false)
		assert.ErrorIs(t, err, ErrClosed)
		assert.ErrorIs(t, (*Context)(nil).ClearMemory(), ErrClosed)
		assert.ErrorIs(t, (*Sampler)(nil).Reset(), ErrClosed)
		assert.ErrorIs(t, (*Batch)(nil).Add(1, 0, []int32{0}, false), ErrClosed)
	})
}

// TestConcurrentUse exercises the locking under -race: tokenizing from several
// goroutines while two contexts of the same model generate, then closing the model while
// generations may still be running.
func TestConcurrentUse(t *testing.T) {
	requireStories(t)
	m, err := LoadModel(storiesPath, ModelOptions{})
	require.NoError(t, err)
	defer m.Close()

	var wg sync.WaitGroup
	texts := make([]string, 2)
	for i := range texts {
		c, err := NewContext(m, ContextOptions{NCtx: 256, Threads: 1})
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			texts[i], _ = GenerateText(context.Background(), c, "Once upon a time", GenerateOptions{MaxTokens: 20})
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				toks, err := m.Tokenize("Once upon a time, there was a cat.", true, false)
				if assert.NoError(t, err) {
					_, err = m.Detokenize(toks, true, false)
					assert.NoError(t, err)
				}
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, texts[0], texts[1])
	assert.Equal(t, storiesGreedy[len("Once upon a time"):len("Once upon a time")+len(texts[0])], texts[0])

	// Close races with running generations: they end with ErrClosed, nothing crashes.
	c, err := NewContext(m, ContextOptions{NCtx: 256, Threads: 1})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := GenerateText(context.Background(), c, "Once upon a time", GenerateOptions{})
		done <- err
	}()
	require.NoError(t, m.Close())
	err = <-done
	if err != nil {
		assert.ErrorIs(t, err, ErrClosed)
	}
}
