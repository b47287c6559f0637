//go:build cgo

package ggml

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBackwardMatchesAnalyticGradient(t *testing.T) {
	const k, m, n = 8, 4, 3
	r := rand.New(rand.NewPCG(11, 12))
	w := randn(r, k*m, 1)
	x := randn(r, k*n, 1)
	for _, be := range testBackends(t) {
		t.Run(be.Name(), func(t *testing.T) {
			e := newEnv(t, be)
			W := e.leaf(TypeF32, w, k, m)
			X := e.leaf(TypeF32, x, k, n)
			e.alloc()
			var g *Graph
			var loss *Tensor
			require.NoError(t, Build(func() {
				W.SetParam()
				X.SetParam()
				loss = e.c.Sum(e.c.Sqr(e.c.MulMat(W, X))).SetLoss().SetOutput()
				g = e.c.NewGraph(256, true)
				g.Expand(loss)
				g.BuildBackward(e.c)
			}))
			s := e.scheduler()
			require.NoError(t, s.Alloc(g))
			g.Reset()
			require.NoError(t, s.Run(g))

			y := matmulRef(to64(w), to64(x), k, m, n)
			wantLoss := 0.0
			for _, v := range y {
				wantLoss += v * v
			}
			gotLoss, err := loss.F32()
			require.NoError(t, err)
			assert.InDelta(t, wantLoss, gotLoss[0], 1e-4*wantLoss)

			gw, err := g.Grad(W).F32()
			require.NoError(t, err)
			gx, err := g.Grad(X).F32()
			require.NoError(t, err)
			for i := 0; i < m; i++ {
				for l := 0; l < k; l++ {
					want := 0.0
					for j := 0; j < n; j++ {
						want += 2 * y[j*m+i] * float64(x[j*k+l])
					}
					assert.InDelta(t, want, gw[i*k+l], 1e-4*(1+math.Abs(want)), "dL/dW[%d][%d]", i, l)
				}
			}
			for j := 0; j < n; j++ {
				for l := 0; l < k; l++ {
					want := 0.0
					for i := 0; i < m; i++ {
						want += 2 * y[j*m+i] * float64(w[i*k+l])
					}
					assert.InDelta(t, want, gx[j*k+l], 1e-4*(1+math.Abs(want)), "dL/dX[%d][%d]", j, l)
				}
			}
		})
	}
}

// TestOptimizerMatchesFloat64AdamW fits y = a·x + b with ggml-opt and a learning rate
// Go changes every step, against AdamW computed in float64.
func TestOptimizerMatchesFloat64AdamW(t *testing.T) {
	const n = 16
	r := rand.New(rand.NewPCG(13, 14))
	xs := randn(r, n, 1)
	ys := make([]float32, n)
	for i, x := range xs {
		ys[i] = 3*x - 0.5
	}
	lr := func(step int) float32 { return 0.1 / float32(step) }
	adam := func(step int) AdamW {
		return AdamW{LR: lr(step), Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	}
	for _, be := range testBackends(t) {
		t.Run(be.Name(), func(t *testing.T) {
			e := newEnv(t, be)
			A := e.leaf(TypeF32, []float32{0.2}, 1, 1)
			B := e.leaf(TypeF32, []float32{0.1}, 1, 1)
			X := e.leaf(TypeF32, xs, 1, n)
			e.alloc()
			var out *Tensor
			require.NoError(t, Build(func() {
				A.SetParam()
				B.SetParam()
				X.SetInput()
				out = e.c.Add(e.c.MulMat(A, X), B)
			}))
			opt, err := NewOptimizer(e.scheduler(), e.c, X, out, OptimizerOptions{Loss: LossMSE, Params: adam})
			require.NoError(t, err)
			defer opt.Close()
			require.NotNil(t, opt.Labels())

			// Reference AdamW, float64, ggml's update order.
			a, b := 0.2, 0.1
			var ma, va, mb, vb float64
			for step := 1; step <= 6; step++ {
				loss, err := opt.Step(func() error { return opt.Labels().SetF32(ys) })
				require.NoError(t, err)

				var ga, gb, refLoss float64
				for i := range xs {
					d := a*float64(xs[i]) + b - float64(ys[i])
					refLoss += d * d / n
					ga += 2 * d * float64(xs[i]) / n
					gb += 2 * d / n
				}
				assert.InDelta(t, refLoss, loss, 1e-4*refLoss, "loss at step %d", step)
				p := adam(step)
				b1, b2 := float64(p.Beta1), float64(p.Beta2)
				upd := func(w, g float64, m, v *float64) float64 {
					*m = *m*b1 + g*(1-b1)
					*v = *v*b2 + g*g*(1-b2)
					mh := *m / (1 - math.Pow(b1, float64(step)))
					vh := math.Sqrt(*v/(1-math.Pow(b2, float64(step)))) + float64(p.Eps)
					return w*(1-float64(p.LR)*float64(p.WeightDecay)) - float64(p.LR)*mh/vh
				}
				a, b = upd(a, ga, &ma, &va), upd(b, gb, &mb, &vb)
				gotA, err := A.F32()
				require.NoError(t, err)
				gotB, err := B.F32()
				require.NoError(t, err)
				assert.InDelta(t, a, gotA[0], 1e-5, "a after step %d", step)
				assert.InDelta(t, b, gotB[0], 1e-5, "b after step %d", step)
			}
			assert.Equal(t, 6, opt.Steps())
		})
	}
}

func TestOptimizerRejectsBadSettings(t *testing.T) {
	be, err := NewCPUBackend(1)
	require.NoError(t, err)
	defer be.Close()
	e := newEnv(t, be)
	A := e.leaf(TypeF32, []float32{1}, 1, 1)
	X := e.leaf(TypeF32, []float32{1, 2}, 1, 2)
	e.alloc()
	var out *Tensor
	require.NoError(t, Build(func() { A.SetParam(); X.SetInput(); out = e.c.MulMat(A, X) }))
	bad := func(int) AdamW { return AdamW{LR: 0, Beta1: 0.9, Beta2: 0.999} }
	_, err = NewOptimizer(e.scheduler(), e.c, X, out, OptimizerOptions{Loss: LossSum, Params: bad})
	assert.ErrorContains(t, err, "learning rate")
	assert.Error(t, AdamW{LR: 1, Beta1: 2}.Validate())
	assert.Error(t, AdamW{LR: 1, WeightDecay: 1.5}.Validate())
	assert.Error(t, AdamW{LR: float32(math.NaN())}.Validate())
}
