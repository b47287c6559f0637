//go:build cgo

package ggml

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCrossEntropyTargets checks the fused loss of logits X [V, K] against their
// targets, and its gradient through FuseCrossEntropy's rewrite of ggml's one-hot
// cross-entropy, against float64, on 1, 2 and 3 threads (the results are the same).
func TestCrossEntropyTargets(t *testing.T) {
	const V, K = 1000, 37
	r := rand.New(rand.NewPCG(3, 4))
	x := randn(r, V*K, 3)
	targets := make([]int32, K)
	onehot := make([]float32, V*K)
	for k := range targets {
		targets[k] = int32(r.IntN(V))
		onehot[k*V+int(targets[k])] = 1
	}
	// float64: loss = mean_k (lse_k - x_k[t_k]); ∂loss/∂x_k = (softmax_k - onehot_k)/K.
	wantLoss, wantGrad := 0.0, make([]float64, V*K)
	for k := 0; k < K; k++ {
		row := to64(x[k*V : (k+1)*V])
		m := row[0]
		for _, v := range row {
			m = math.Max(m, v)
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(v - m)
		}
		lse := m + math.Log(s)
		wantLoss += (lse - row[targets[k]]) / K
		for i, v := range row {
			wantGrad[k*V+i] = math.Exp(v-lse) / K
		}
		wantGrad[k*V+int(targets[k])] -= 1.0 / K
	}
	var results [][]float32
	for _, threads := range []int{2, 1, 3} {
		cpu, err := NewCPUBackend(threads)
		require.NoError(t, err)
		defer cpu.Close()
		e := newEnv(t, cpu)
		X := e.leaf(TypeF32, x, V, K)
		L := e.leaf(TypeF32, onehot, V, K)
		Tg := e.leafI32(targets, K)
		e.alloc()
		var run *Graph
		var loss, seed, grad *Tensor
		require.NoError(t, Build(func() {
			X.SetParam()
			loss = e.c.CrossEntropyLoss(X, L).SetLoss().SetOutput()
			g := e.c.NewGraph(64, true)
			g.Expand(loss)
			g.BuildBackward(e.c)
			g.FuseCrossEntropy(e.c, X, loss, Tg)
			seed, grad = g.Grad(loss).SetInput(), g.Grad(X).SetOutput()
			run = e.c.NewGraph(64, false)
			run.ExpandFrom(g, []*Tensor{loss, grad}, nil)
		}))
		assert.Zero(t, countOps(run, "CROSS_ENTROPY_LOSS")+countOps(run, "CROSS_ENTROPY_LOSS_BACK"))
		s := e.scheduler()
		require.NoError(t, s.Alloc(run))
		require.NoError(t, seed.SetF32([]float32{1}))
		require.NoError(t, s.Run(run))
		lv, err := loss.F32()
		require.NoError(t, err)
		gv, err := grad.F32()
		require.NoError(t, err)
		assert.InDelta(t, wantLoss, lv[0], 1e-6*wantLoss)
		d, at := maxAbsDiff(gv, wantGrad)
		assert.LessOrEqualf(t, d, 1e-6*maxAbs(wantGrad), "gradient: max diff %g at %d", d, at)
		results = append(results, append(lv, gv...))
	}
	assert.Equal(t, results[0], results[1])
	assert.Equal(t, results[0], results[2])
}
