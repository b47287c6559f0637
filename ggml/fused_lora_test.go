//go:build cgo

package ggml

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loraGradRef is y = s·B(A·x) and its gradients in float64 for x [in, N], A [in, r],
// B [r, out] and g [out, N] (ggml order, so x[t·in + i], A[k·in + i], B[o·r + k]).
func loraGradRef(x, A, B, g []float64, in, N, r, out int, s float64) (y, dx, dA, dB []float64) {
	u, du := make([]float64, r*N), make([]float64, r*N)
	y, dx = make([]float64, out*N), make([]float64, in*N)
	dA, dB = make([]float64, in*r), make([]float64, r*out)
	for t := 0; t < N; t++ {
		for k := 0; k < r; k++ {
			for i := 0; i < in; i++ {
				u[t*r+k] += A[k*in+i] * x[t*in+i]
			}
			for o := 0; o < out; o++ {
				y[t*out+o] += s * B[o*r+k] * u[t*r+k]
				du[t*r+k] += s * B[o*r+k] * g[t*out+o]
			}
		}
		for k := 0; k < r; k++ {
			for i := 0; i < in; i++ {
				dx[t*in+i] += A[k*in+i] * du[t*r+k]
				dA[k*in+i] += du[t*r+k] * x[t*in+i]
			}
			for o := 0; o < out; o++ {
				dB[o*r+k] += s * g[t*out+o] * u[t*r+k]
			}
		}
	}
	return y, dx, dA, dB
}

func runFusedLoRA(t *testing.T, threads int, x, A, B, g []float32, in, N, r, out int, s float32) [][]float32 {
	cpu, err := NewCPUBackend(threads)
	require.NoError(t, err)
	t.Cleanup(func() { cpu.Close() })
	e := newEnv(t, cpu)
	X := e.leaf(TypeF32, x, in, N)
	TA := e.leaf(TypeF32, A, in, r)
	TB := e.leaf(TypeF32, B, r, out)
	G := e.leaf(TypeF32, g, out, N)
	return e.runAll(func(c *Context) []*Tensor {
		y := c.LoRA(X, TA, TB, s)
		dx, dA, dB := c.LoRABack(X, TA, TB, y, G, s)
		return []*Tensor{c.Cont(y), c.Cont(dx), c.Cont(dA), c.Cont(dB)}
	})
}

func TestLoRAMatchesReference(t *testing.T) {
	for _, tc := range []struct{ in, N, r, out int }{
		{576, 130, 8, 1536}, {37, 5, 3, 19}, {64, 64, 16, 64}, {96, 33, 20, 80},
	} {
		t.Run(fmt.Sprintf("in%d_N%d_r%d_out%d", tc.in, tc.N, tc.r, tc.out), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(tc.in), uint64(tc.r)))
			x, A := randn(r, tc.in*tc.N, 1), randn(r, tc.in*tc.r, 0.1)
			B, g := randn(r, tc.r*tc.out, 0.1), randn(r, tc.out*tc.N, 1)
			const s = 2.5
			wy, wdx, wdA, wdB := loraGradRef(to64(x), to64(A), to64(B), to64(g), tc.in, tc.N, tc.r, tc.out, s)
			got := runFusedLoRA(t, 2, x, A, B, g, tc.in, tc.N, tc.r, tc.out, s)
			for i, want := range [][]float64{wy, wdx, wdA, wdB} {
				dmax, at := maxAbsDiff(got[i], want)
				assert.LessOrEqualf(t, dmax, 1e-5*maxAbs(want), "%s: max diff %g at %d (range %g)",
					[]string{"y", "dx", "dA", "dB"}[i], dmax, at, maxAbs(want))
			}
			for _, n := range []int{1, 3} {
				assert.Equal(t, got, runFusedLoRA(t, n, x, A, B, g, tc.in, tc.N, tc.r, tc.out, s), "%d threads", n)
			}
		})
	}
}

// BenchmarkLoRA runs the fused adapter ops, forward and backward, on rank 8 over 512
// tokens for a square projection of the 24m and 143m shapes.
func BenchmarkLoRA(b *testing.B) {
	for _, d := range []int{256, 288, 320, 512, 576, 1024} {
		const N, r = 512, 8
		rng := rand.New(rand.NewPCG(1, 2))
		cpu, err := NewCPUBackend(2)
		require.NoError(b, err)
		defer cpu.Close()
		e := newEnv(b, cpu)
		X := e.leaf(TypeF32, randn(rng, d*N, 1), d, N)
		A := e.leaf(TypeF32, randn(rng, d*r, 0.1), d, r)
		B := e.leaf(TypeF32, randn(rng, r*d, 0.1), r, d)
		G := e.leaf(TypeF32, randn(rng, d*N, 1), d, N)
		e.alloc()
		var fwd, bwd *Graph
		require.NoError(b, Build(func() {
			c := e.c
			y := c.LoRA(X, A, B, 2)
			fwd = c.NewGraph(64, false)
			fwd.Expand(y)
			dx, dA, dB := c.LoRABack(X, A, B, y, G, 2)
			bwd = c.NewGraph(64, false)
			for _, x := range []*Tensor{dx, dA, dB} {
				bwd.Expand(x)
			}
		}))
		s := e.scheduler()
		for _, g := range []*Graph{fwd, bwd} {
			require.NoError(b, s.Compute(g))
		}
		b.Run(fmt.Sprintf("forward/%d", d), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				require.NoError(b, s.Compute(fwd))
			}
		})
		b.Run(fmt.Sprintf("backward/%d", d), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				require.NoError(b, s.Compute(bwd))
			}
		})
	}
}
