//go:build cgo

package bindings

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGreedyInGraph decodes prompts and steps of several sequences with GreedyInGraph:
// every output's pick from the graph is the first of its largest logits (ecotune_argmax,
// itself checked against llama.cpp's greedy sampler), and a greedy Sampler returns it;
// where a decode's outputs span two graphs the graph has no pick and the sampler scans
// the logits. (ggml.TestArgmaxFirst checks the op on ties, NaNs and infinities.)
func TestGreedyInGraph(t *testing.T) {
	m := loadF16(t)
	greedy, err := NewSampler(m, SamplerOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { greedy.Close() })

	const seqs = 4
	for _, threads := range []int{1, 2} {
		t.Run(fmt.Sprintf("threads%d", threads), func(t *testing.T) {
			c := newContext(t, m, ContextOptions{NCtx: 256 * seqs, NUBatch: 16, NSeqMax: seqs + 1, Threads: threads,
				BatchInvariant: true, GreedyInGraph: true})
			b, err := NewBatch(64, 1)
			require.NoError(t, err)
			t.Cleanup(func() { b.Close() })
			// check compares output idx's picks with the logits' first largest
			check := func(what string, idx int, inGraph bool) int32 {
				got := c.graphArgmax(idx)
				l, err := c.Logits(idx)
				require.NoError(t, err)
				want := argmax(l)
				if inGraph {
					assert.Equal(t, want, got, "%s: the graph's pick", what)
				} else {
					assert.Equal(t, int32(-1), got, "%s: no pick from the graph", what)
				}
				tok, err := greedy.Sample(c, idx)
				require.NoError(t, err)
				assert.Equal(t, want, tok, "%s: the sampler's pick", what)
				return tok
			}
			next := make([]int32, seqs)
			for s := range seqs {
				p, err := m.PromptTokens(fmt.Sprintf("Once upon a time, %d birds sat on a wall", 3+s*7), true)
				require.NoError(t, err)
				require.Less(t, len(p), 16, "a prompt in one graph")
				b.Clear()
				for i, tok := range p {
					require.NoError(t, b.Add(tok, int32(i), []int32{int32(s)}, i == len(p)-1))
				}
				require.NoError(t, c.Decode(b))
				next[s] = check(fmt.Sprintf("prompt %d", s), len(p)-1, true)
				b.Clear()
				require.NoError(t, b.Add(next[s], int32(len(p)), []int32{int32(s)}, true))
				require.NoError(t, c.Decode(b))
				next[s] = check(fmt.Sprintf("sequence %d alone", s), 0, true)
			}
			// steps of all sequences together: one output a sequence, in one graph
			for step := range 3 {
				b.Clear()
				for s := range seqs {
					_, pos, err := c.SeqPosRange(int32(s))
					require.NoError(t, err)
					require.NoError(t, b.Add(next[s], pos+1, []int32{int32(s)}, true))
				}
				require.NoError(t, c.Decode(b))
				for s := range seqs {
					next[s] = check(fmt.Sprintf("step %d, sequence %d", step, s), s, true)
				}
			}
			// 20 outputs of one sequence: two graphs of 16 and 4 tokens
			b.Clear()
			for i := range 20 {
				require.NoError(t, b.Add(int32(100+i), int32(i), []int32{seqs}, true))
			}
			require.NoError(t, c.Decode(b))
			for _, idx := range []int{0, 15, 16, 19} {
				check(fmt.Sprintf("output %d of two graphs", idx), idx, false)
			}
		})
	}
	t.Run("off", func(t *testing.T) {
		c := newContext(t, m, ContextOptions{NCtx: 256, Threads: 2, BatchInvariant: true})
		b, err := NewBatch(8, 1)
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		require.NoError(t, b.Add(1, 0, []int32{0}, true))
		require.NoError(t, c.Decode(b))
		assert.Equal(t, int32(-1), c.graphArgmax(0))
	})
}
