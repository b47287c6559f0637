//go:build cgo

package ggml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// linearLossRef is the float64 loss of MulMat(w, h) against targets and its gradient
// with respect to h: w [E, V] row-major as V rows of E, h K columns of E.
func linearLossRef(w, h []float64, targets []int32, E, V, K int) (float64, []float64) {
	z := matmulRef(w, h, E, V, K) // [K][V]
	loss, grad := 0.0, make([]float64, E*K)
	for k := 0; k < K; k++ {
		p := softmaxRef(z[k*V : (k+1)*V])
		loss -= math.Log(p[targets[k]]) / float64(K)
		p[targets[k]] -= 1
		for v, pv := range p {
			for e := 0; e < E; e++ {
				grad[k*E+e] += w[v*E+e] * pv / float64(K)
			}
		}
	}
	return loss, grad
}

// TestLinearCrossEntropy checks the chunked output layer and loss (LinearCrossEntropy,
// and FuseLinearCrossEntropy's loss and input gradient) against float64, on weights of
// several types whose vocabulary the chunks do not divide, and against what the
// whole-logits path (FuseCrossEntropy, the input gradient through OutProdsAsMatMul's
// transposed copy of the same type) gets: the chunked path must be as close to float64
// as it. Half the targets are each column's most likely class (p near 1, where the
// gradient's target term cancels most of the rest), half random ones. The results are
// the same on 1, 2 and 3 threads.
func TestLinearCrossEntropy(t *testing.T) {
	const E, V, K = 256, 1000, 37
	for _, tc := range []struct {
		w, quantT Type
		rows      int
	}{
		{TypeF32, TypeF32, 96},
		{TypeF32, TypeF32, 1000},
		{TypeBF16, TypeBF16, 300},
		{TypeQ8_0, TypeF32, 96},
		{TypeQ4_K, TypeF32, 128},
		{TypeQ4_K, TypeBF16, 96},
		{TypeQ6_K, TypeBF16, 0},
	} {
		t.Run(fmt.Sprintf("%s-%s-%d", tc.w, tc.quantT, tc.rows), func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, uint64(tc.w)))
			wq, err := Quantize(tc.w, randn(r, E*V, 0.5), E)
			require.NoError(t, err)
			wf, err := Dequantize(tc.w, wq, E*V)
			require.NoError(t, err)
			h := randn(r, E*K, 0.3)
			z := matmulRef(to64(wf), to64(h), E, V, K)
			targets := make([]int32, K)
			onehot := make([]float32, V*K)
			for k := range targets {
				targets[k] = int32(r.IntN(V))
				if k%2 == 0 {
					for v := range V {
						if z[k*V+v] > z[k*V+int(targets[k])] {
							targets[k] = int32(v)
						}
					}
				}
				onehot[k*V+int(targets[k])] = 1
			}
			wantLoss, wantGrad := linearLossRef(to64(wf), to64(h), targets, E, V, K)
			run := func(threads int, chunked bool) (loss, fwdLoss float32, gradV []float32) {
				cpu, err := NewCPUBackend(threads)
				require.NoError(t, err)
				defer cpu.Close()
				e := newEnv(t, cpu)
				W := e.leafBytes(tc.w, wq, E, V)
				H := e.leaf(TypeF32, h, E, K)
				L := e.leaf(TypeF32, onehot, V, K)
				Tg := e.leafI32(targets, K)
				e.alloc()
				var g, run *Graph
				var l, fwd, seed, grad *Tensor
				require.NoError(t, Build(func() {
					H.SetParam()
					l = e.c.CrossEntropyLoss(e.c.MulMat(W, H), L).SetLoss().SetOutput()
					g = e.c.NewGraph(4096, true)
					g.Expand(l)
					g.BuildBackward(e.c)
					if chunked {
						g.FuseLinearCrossEntropy(e.c, W, H, l, Tg, tc.rows, tc.quantT, nil)
						fwd = e.c.LinearCrossEntropy(W, H, Tg, tc.rows).SetOutput()
					} else {
						g.FuseCrossEntropy(e.c, l.Src(0), l, Tg)
						g.OutProdsAsMatMul(e.c, tc.quantT, nil, true)
					}
					seed, grad = g.Grad(l).SetInput(), g.Grad(H).SetOutput()
					run = e.c.NewGraph(4096, false)
					outs := []*Tensor{l, grad}
					if fwd != nil {
						outs = append(outs, fwd)
					}
					run.ExpandFrom(g, outs, nil)
				}))
				if chunked {
					assert.Zero(t, countOps(run, "CROSS_ENTROPY_LOSS")+countOps(run, "CROSS_ENTROPY_LOSS_BACK")+countOps(run, "OUT_PROD"))
				}
				s := e.scheduler()
				require.NoError(t, s.Alloc(run))
				require.NoError(t, seed.SetF32([]float32{1}))
				require.NoError(t, s.Run(run))
				lv, err := l.F32()
				require.NoError(t, err)
				gv, err := grad.F32()
				require.NoError(t, err)
				if fwd != nil {
					fv, err := fwd.F32()
					require.NoError(t, err)
					fwdLoss = fv[0]
				}
				return lv[0], fwdLoss, gv
			}
			oldLoss, _, oldGrad := run(2, false)
			loss, fwdLoss, grad := run(2, true)
			assert.Equal(t, loss, fwdLoss, "LinearCrossEntropy and the fused training graph give the same loss")
			oldD, _ := maxAbsDiff(oldGrad, wantGrad)
			d, at := maxAbsDiff(grad, wantGrad)
			scale := maxAbs(wantGrad)
			t.Logf("loss %.7g (whole logits %.7g, float64 %.7g); gradient max error %.3g (whole logits %.3g) of %.3g",
				loss, oldLoss, wantLoss, d, oldD, scale)
			// ggml's product of a quantized w rounds h to 8 bits first, in both paths.
			assert.InDelta(t, oldLoss, loss, 1e-6*float64(oldLoss))
			if tc.w == TypeF32 {
				assert.InDelta(t, wantLoss, loss, 1e-6*wantLoss)
			}
			// Sums over a chunk and then over chunks round differently from one sum, by
			// a few F32 ulps of the result.
			assert.LessOrEqualf(t, d, max(2*oldD, 2e-6*scale), "gradient: max diff %g at %d", d, at)
			for _, threads := range []int{1, 3} {
				l2, f2, g2 := run(threads, true)
				assert.Equal(t, loss, l2)
				assert.Equal(t, fwdLoss, f2)
				assert.Equal(t, grad, g2)
			}
		})
	}
}

// TestLinearCrossEntropyRows checks the chunk sizes: within the memory bound, equal but
// for the last, and the whole vocabulary when it fits.
func TestLinearCrossEntropyRows(t *testing.T) {
	assert.Equal(t, 512, LinearCrossEntropyRows(512, 64, 256, TypeF32))
	assert.Equal(t, 128256/8, LinearCrossEntropyRows(128256, 0, 128, TypeF32), "without a transposed copy the logits decide")
	rows := LinearCrossEntropyRows(128256, 3072, 256, TypeBF16)
	assert.LessOrEqual(t, rows*3072*2, lceChunkBytes)
	chunks := (128256 + rows - 1) / rows
	assert.Greater(t, 128256-(chunks-1)*rows, rows-chunks, "the last chunk is nearly as large as the others")
	assert.LessOrEqual(t, 8*1024*LinearCrossEntropyRows(128256, 64, 1024, TypeF32), lceChunkBytes)
	assert.Equal(t, 63, LinearCrossEntropyRows(1000, 1<<20, 1, TypeF32), "at least 64 rows, then evened out")
}
