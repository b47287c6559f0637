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
	// mode: 0 plain, 1 checkpointed, 2 checkpointed keeping each block's up product, 3 the
	// same kept as a stored copy of the same type (what a narrower copy does, exactly).
	run := func(t *testing.T, be *Backend, mode int) (grads [][]float32, buffer int) {
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
			var keep []Kept
			for l := 0; l < layers; l++ {
				marks = append(marks, x)
				up := e.c.MulMat(W[2*l], x)
				switch mode {
				case 2:
					keep = append(keep, Kept{Tensor: up})
				case 3:
					keep = append(keep, Kept{Tensor: up, Stored: e.c.Cast(up, TypeF32)})
				}
				x = e.c.Add(x, e.c.MulMat(W[2*l+1], e.c.SiLU(up)))
			}
			marks = append(marks, x)
			loss := e.c.Sum(e.c.Sqr(x)).SetLoss().SetOutput()
			g = e.c.NewGraph(2048, true)
			for _, k := range keep {
				if k.Stored != nil {
					g.Expand(k.Stored)
				}
			}
			g.Expand(loss)
			g.BuildBackward(e.c)
			if mode > 0 {
				assert.Positive(t, g.Checkpoint(e.c, marks, keep))
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
			plain, plainBuf := run(t, be, 0)
			var bufs [4]int
			for mode := 1; mode <= 3; mode++ {
				var ck [][]float32
				ck, bufs[mode] = run(t, be, mode)
				for i := range plain {
					d, at := maxAbsDiff(ck[i], to64(plain[i]))
					assert.Positive(t, maxAbs(to64(plain[i])), "output %d", i)
					assert.Zerof(t, d, "mode %d, output %d: max diff %g at %d (of %g)", mode, i, d, at, maxAbs(to64(plain[i])))
				}
			}
			// Without checkpointing each block keeps its [wide, T] up product (512 KiB),
			// which SiLU's gradient reads; with it, one block's worth is live at a time;
			// keeping the products (or a copy of each) holds them all again, at least
			// the first layers-1 blocks' at once.
			act := 4 * wide * T
			t.Logf("compute buffer: %d KiB plain, %d KiB checkpointed, %d and %d KiB keeping the products", plainBuf>>10, bufs[1]>>10, bufs[2]>>10, bufs[3]>>10)
			assert.Less(t, bufs[1], plainBuf-(layers-3)*act, "checkpointing saves most of the activations")
			for _, kept := range bufs[2:] {
				assert.GreaterOrEqual(t, kept, (layers-1)*act, "the kept products stay")
			}
		})
	}
}
