//go:build cgo

package ggml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

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

// TestLinearCrossEntropyRows checks the chunk sizes: multiples of 64 within the memory
// bound (evened out, a chunk's share of 64 rows over it), about equal, and the whole
// vocabulary when it fits.
func TestLinearCrossEntropyRows(t *testing.T) {
	assert.Equal(t, 512, LinearCrossEntropyRows(512, 64, 256, TypeF32))
	assert.Equal(t, 32064, LinearCrossEntropyRows(128256, 0, 128, TypeF32), "without a transposed copy the logits decide")
	for _, c := range []struct{ vocab, embd, k int }{{128256, 3072, 256}, {128256, 64, 1024}, {32000, 288, 512}, {151936, 896, 300}, {1000, 1 << 20, 1}} {
		rows := LinearCrossEntropyRows(c.vocab, c.embd, c.k, TypeBF16)
		chunks := (c.vocab + rows - 1) / rows
		assert.Zero(t, rows%64, "%v: %d rows", c, rows)
		assert.LessOrEqual(t, min(rows*c.embd*2, rows*c.k*8), lceChunkBytes+64*max(c.embd*2, c.k*8), "%v: %d rows", c, rows)
		assert.Greater(t, c.vocab-(chunks-1)*rows, rows-64*chunks, "%v: the last of %d chunks of %d rows is nearly as large as the others", c, chunks, rows)
	}
}

// BenchmarkLinearCrossEntropy times a training step's output layer and loss (forward and
// the input gradient) whole (FuseCrossEntropy, and the input gradient through
// OutProdsAsMatMul) and in vocabulary chunks (FuseLinearCrossEntropy), on two threads:
// the 24m benchmark shape's (F32, with a kept transposed copy, 512 targets) and a 3B
// model's (Q6_K tied embeddings of Llama 3's vocabulary, BF16 copies, 256 targets). The
// variants alternate within each iteration, so a busy machine slows both alike.
func BenchmarkLinearCrossEntropy(b *testing.B) {
	for _, sh := range []struct {
		name    string
		E, V, K int
		w, qt   Type
	}{
		{"24m", 288, 32000, 512, TypeF32, TypeF32},
		{"3b", 3072, 128256, 256, TypeQ6_K, TypeBF16},
	} {
		b.Run(sh.name, func(b *testing.B) {
			cpu, err := NewCPUBackend(2)
			require.NoError(b, err)
			defer cpu.Close()
			r := rand.New(rand.NewPCG(7, 8))
			w := randn(r, sh.E*sh.V, 0.05)
			wq, err := Quantize(sh.w, w, sh.E)
			require.NoError(b, err)
			targets := make([]int32, sh.K)
			for k := range targets {
				targets[k] = int32(r.IntN(sh.V))
			}
			type variant struct {
				s         *Scheduler
				run       *Graph
				seed      *Tensor
				wholeTime time.Duration
			}
			var vs [2]variant
			for i, chunked := range []bool{false, true} {
				e := newEnv(b, cpu)
				W := e.leafBytes(sh.w, wq, sh.E, sh.V)
				H := e.leaf(TypeF32, randn(r, sh.E*sh.K, 1), sh.E, sh.K)
				L := e.in.NewTensor(TypeF32, sh.V, sh.K) // read by nothing once fused
				Tg := e.leafI32(targets, sh.K)
				var WT *Tensor
				if sh.w == TypeF32 {
					wt := make([]float32, len(w))
					for v := 0; v < sh.V; v++ {
						for j := 0; j < sh.E; j++ {
							wt[j*sh.V+v] = w[v*sh.E+j]
						}
					}
					WT = e.leaf(TypeF32, wt, sh.V, sh.E)
				}
				kept := func(t *Tensor) *Tensor { return WT }
				e.alloc()
				require.NoError(b, Build(func() {
					H.SetParam()
					l := e.c.CrossEntropyLoss(e.c.MulMat(W, H), L).SetLoss().SetOutput()
					g := e.c.NewGraph(4096, true)
					g.Expand(l)
					g.BuildBackward(e.c)
					if chunked {
						g.FuseLinearCrossEntropy(e.c, W, H, l, Tg, 0, sh.qt, kept)
					} else {
						g.FuseCrossEntropy(e.c, l.Src(0), l, Tg)
						g.OutProdsAsMatMul(e.c, sh.qt, kept, true)
					}
					vs[i].seed = g.Grad(l).SetInput()
					vs[i].run = e.c.NewGraph(4096, false)
					vs[i].run.ExpandFrom(g, []*Tensor{l, g.Grad(H).SetOutput()}, nil)
				}))
				vs[i].s = e.scheduler()
				require.NoError(b, vs[i].s.Alloc(vs[i].run))
				require.NoError(b, vs[i].seed.SetF32([]float32{1}))
				b.Logf("%s: compute buffer %d MiB", map[bool]string{false: "whole", true: "chunked"}[chunked], vs[i].s.BufferSize()>>20)
			}
			b.ResetTimer()
			for range b.N {
				for i := range vs {
					t0 := time.Now()
					require.NoError(b, vs[i].s.Run(vs[i].run))
					vs[i].wholeTime += time.Since(t0)
				}
			}
			b.ReportMetric(vs[0].wholeTime.Seconds()*1e3/float64(b.N), "ms-whole")
			b.ReportMetric(vs[1].wholeTime.Seconds()*1e3/float64(b.N), "ms-chunked")
		})
	}
}
