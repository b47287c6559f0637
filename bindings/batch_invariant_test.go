//go:build cgo

package bindings

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBatchInvariant decodes a token of one sequence alone and then together with seven
// other sequences' tokens, from the same state: with BatchInvariant its logits are the
// same to the bit, with llama.cpp's default a single token goes through ggml's vec_dot,
// which sums in another order than the batched products (the guard that the model
// exercises what the option changes: both models' products do).
//
// The long case gives sequence 0 a context of 600 tokens: a single token attending to
// 512 cells or more has llama.cpp's CPU flash attention split the cells across its
// threads and merge the parts, which rounds otherwise than the one pass it takes beside
// other sequences; BatchInvariant keeps the one pass.
func TestBatchInvariant(t *testing.T) {
	// An F16 model with heads of 48 as well: its single-token products take tinyBLAS's
	// one-column path, and its attention the F16 rows' vector tails (patch 0003).
	t.Run("stories260K", func(t *testing.T) { checkBatchInvariant(t, loadStories(t)) })
	t.Run("f16", func(t *testing.T) { checkBatchInvariant(t, loadF16(t)) })
}

// checkBatchInvariant is TestBatchInvariant on one model.
func checkBatchInvariant(t *testing.T, m *Model) {
	const seqs = 8
	prompts := make([][]int32, seqs)
	for s := range prompts {
		var err error
		prompts[s], err = m.PromptTokens(fmt.Sprintf("Once upon a time, %d birds sat on a wall", 3+s*7), true)
		require.NoError(t, err)
	}
	// logits returns sequence 0's logits for one more token, decoded with the other
	// sequences' next tokens when together is set. Two threads: a single token's rows and
	// a long context's cells are split between them.
	logits := func(invariant, together bool) []float32 {
		c := newContext(t, m, ContextOptions{NCtx: 1024 * seqs, NSeqMax: seqs, Threads: 2, BatchInvariant: invariant})
		b, err := NewBatch(64, 1)
		require.NoError(t, err)
		defer b.Close()
		for s, p := range prompts {
			for at := 0; at < len(p); at += b.Cap() {
				b.Clear()
				for i := at; i < min(len(p), at+b.Cap()); i++ {
					require.NoError(t, b.Add(p[i], int32(i), []int32{int32(s)}, i == len(p)-1))
				}
				require.NoError(t, c.Decode(b))
			}
		}
		b.Clear()
		for s := range seqs {
			if s > 0 && !together {
				break
			}
			require.NoError(t, b.Add(int32(20+s), int32(len(prompts[s])), []int32{int32(s)}, true))
		}
		require.NoError(t, c.Decode(b))
		l, err := c.Logits(0)
		require.NoError(t, err)
		return l
	}
	assert.True(t, slices.Equal(logits(true, false), logits(true, true)), "with BatchInvariant, sequence 0's logits alone and in a batch of %d", seqs)
	alone, together := logits(false, false), logits(false, true)
	differ := 0
	for i := range alone {
		if alone[i] != together[i] {
			differ++
		}
	}
	assert.Positive(t, differ, "llama.cpp's default: the logits of a token decoded alone and in a batch should differ in rounding, else this test checks nothing")
	t.Logf("llama.cpp's default: %d of %d logits differ between alone and in a batch of %d", differ, len(alone), seqs)

	long := prompts[0]
	for len(long) < 600 {
		long = append(long, prompts[0][1:]...)
	}
	prompts[0] = long[:600]
	assert.True(t, slices.Equal(logits(true, false), logits(true, true)), "with BatchInvariant, a 600-token sequence's logits alone and in a batch of %d", seqs)
}
