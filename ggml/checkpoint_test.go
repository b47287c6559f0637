//go:build cgo

package ggml

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckpoint trains the first layer of a deep stack of wide MLP blocks with and
// without checkpointing: the gradients must be the same, and the compute buffer
// smaller by most of the stored activations.
func TestCheckpoint(t *testing.T) {
	const d, wide, T, layers = 64, 512, 256, 8
	r := rand.New(rand.NewPCG(3, 4))
	x0 := randn(r, d*T, 1)
	ws := make([][]float32, 2*layers)
	for i := range ws {
		ws[i] = randn(r, d*wide, 0.05)
	}
	run := func(t *testing.T, be *Backend, checkpointed bool) (grads [][]float32, buffer int) {
		e := newEnv(t, be)
		X := e.leaf(TypeF32, x0, d, T)
		W := make([]*Tensor, len(ws))
		for i := range ws {
			if i%2 == 0 {
				W[i] = e.leaf(TypeF32, ws[i], d, wide) // up: [d, wide]
			} else {
				W[i] = e.leaf(TypeF32, ws[i], wide, d) // down: [wide, d]
			}
		}
		e.alloc()
		var g, run *Graph
		var seed *Tensor
		var outs []*Tensor
		require.NoError(t, Build(func() {
			W[0].SetParam()
			W[1].SetParam()
			x := e.c.Scale(X, 1) // a node, so the first checkpoint is in the graph
			var marks []*Tensor
			for l := 0; l < layers; l++ {
				marks = append(marks, x)
				u := e.c.SiLU(e.c.MulMat(W[2*l], x))
				x = e.c.Add(x, e.c.MulMat(W[2*l+1], u))
			}
			marks = append(marks, x)
			loss := e.c.Sum(e.c.Sqr(x)).SetLoss().SetOutput()
			g = e.c.NewGraph(2048, true)
			g.Expand(loss)
			g.BuildBackward(e.c)
			if checkpointed {
				assert.Positive(t, g.Checkpoint(e.c, marks, nil))
			}
			seed = g.Grad(loss).SetInput()
			outs = []*Tensor{loss, g.Grad(W[0]).SetOutput(), g.Grad(W[1]).SetOutput()}
			run = e.c.NewGraph(2048, false)
			run.ExpandFrom(g, outs, nil)

		}))
		s := e.scheduler()
		require.NoError(t, s.Alloc(run))
		require.NoError(t, seed.SetF32([]float32{1}))
		require.NoError(t, s.Run(run))
		for _, o := range outs {
			v, err := o.F32()
			require.NoError(t, err)
			grads = append(grads, v)
		}
		return grads, s.BufferSize()
	}
	for _, be := range testBackends(t) {
		t.Run(be.Name(), func(t *testing.T) {
			plain, plainBuf := run(t, be, false)
			ck, ckBuf := run(t, be, true)
			for i := range plain {
				d, at := maxAbsDiff(ck[i], to64(plain[i]))
				assert.Positive(t, maxAbs(to64(plain[i])), "output %d", i)
				assert.Zerof(t, d, "output %d: max diff %g at %d (of %g)", i, d, at, maxAbs(to64(plain[i])))
			}
			// Without checkpointing each block keeps its [wide, T] product and SiLU
			// (2·512 KiB); with it, one block's worth is live at a time.
			act := 4 * wide * T
			t.Logf("compute buffer: %d KiB plain, %d KiB checkpointed", plainBuf>>10, ckBuf>>10)
			assert.Less(t, ckBuf, plainBuf-(layers-3)*act, "checkpointing saves most of the activations")
		})
	}
}
