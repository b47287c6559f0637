package ggml

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKeptGraphAfterBufferGrows computes a graph, then a much larger one that makes
// the scheduler replace its compute buffer, then the first graph again: it must be
// placed anew, not computed into the freed buffer (which crashed full fine-tuning).
func TestKeptGraphAfterBufferGrows(t *testing.T) {
	be, err := NewCPUBackend(1)
	require.NoError(t, err)
	defer be.Close()
	s, err := NewScheduler([]*Backend{be}, 64)
	require.NoError(t, err)
	defer s.Close()

	state, err := NewContext(4, 0)
	require.NoError(t, err)
	defer state.Close()
	var a *Tensor
	var big [3]*Tensor
	const n = 1 << 20 // 4 MiB of F32 and more: glibc maps such buffers and unmaps them on free
	require.NoError(t, Build(func() {
		a = state.NewTensor(TypeF32, 4)
		for i := range big {
			big[i] = state.NewTensor(TypeF32, (i+1)*n)
		}
	}))
	buf, err := state.AllocTensors(be)
	require.NoError(t, err)
	defer buf.Close()
	require.NoError(t, a.SetF32([]float32{1, 2, 3, 4}))
	require.NoError(t, buf.Clear(0))
	require.NoError(t, a.SetF32([]float32{1, 2, 3, 4}))

	small, err := NewContext(8, 16)
	require.NoError(t, err)
	defer small.Close()
	var sum *Tensor
	var g *Graph
	require.NoError(t, Build(func() {
		sum = small.Sum(small.Sqr(small.Scale(a, 2))).SetOutput()
		g = small.NewGraph(16, false)
		g.Expand(sum)
	}))
	for round := 0; round < 3; round++ {
		// A bigger graph each round: the compute buffer grows and the old one is freed,
		// after the small graph was placed in it.
		large, err := NewContext(8, 16)
		require.NoError(t, err)
		var lg *Graph
		require.NoError(t, Build(func() {
			out := large.Sum(large.Scale(large.Sqr(big[round]), 2)).SetOutput()
			lg = large.NewGraph(16, false)
			lg.Expand(out)
		}))
		require.NoError(t, s.Compute(lg))
		require.NoError(t, large.Close())

		require.NoError(t, s.Compute(g))
		v, err := sum.F32()
		require.NoError(t, err)
		assert.Equal(t, float32(4*(1+4+9+16)), v[0], "round %d", round)
	}
}
