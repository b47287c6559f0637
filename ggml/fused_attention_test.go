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

// attentionGradRef is causal attention and its gradients in float64, straight from the
// definitions: q [hd, H, T, B], k and v [hd, KV, T, B], gO [hd·H, T·B] (ggml order),
// starts (nil, or [T·B]) each query's first visible key.
func attentionGradRef(q, k, v, gO []float64, starts []int32, hd, H, KV, T, B int, o AttentionOptions) (out, dq, dk, dv []float64) {
	out, dq = make([]float64, len(q)), make([]float64, len(q))
	dk, dv = make([]float64, len(k)), make([]float64, len(v))
	pre := float64(o.PreScale)
	if pre == 0 {
		pre = 1
	}
	sc, scale := float64(o.Softcap), float64(o.Scale)
	qi := func(b, h, t int) int { return ((b*T+t)*H + h) * hd }
	ki := func(b, g, t int) int { return ((b*T+t)*KV + g) * hd }
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			g := h / (H / KV)
			for i := 0; i < T; i++ {
				lo := 0
				if o.Window > 0 {
					lo = max(0, i-o.Window+1)
				}
				if starts != nil {
					lo = max(lo, int(starts[b*T+i]))
				}
				s := make([]float64, i+1-lo)
				th := make([]float64, len(s))
				for j := lo; j <= i; j++ {
					z := 0.0
					for d := 0; d < hd; d++ {
						z += q[qi(b, h, i)+d] * k[ki(b, g, j)+d]
					}
					x := z * pre
					if sc > 0 {
						th[j-lo] = math.Tanh(x / sc)
						x = sc * th[j-lo]
					}
					s[j-lo] = x * scale
				}
				p := softmaxRef(s)
				dO := gO[qi(b, h, i) : qi(b, h, i)+hd]
				dp := make([]float64, len(p))
				D := 0.0
				for j := lo; j <= i; j++ {
					for d := 0; d < hd; d++ {
						out[qi(b, h, i)+d] += p[j-lo] * v[ki(b, g, j)+d]
						dp[j-lo] += dO[d] * v[ki(b, g, j)+d]
						dv[ki(b, g, j)+d] += p[j-lo] * dO[d]
					}
					D += p[j-lo] * dp[j-lo]
				}
				for j := lo; j <= i; j++ {
					dz := p[j-lo] * (dp[j-lo] - D) * scale * pre
					if sc > 0 {
						dz *= 1 - th[j-lo]*th[j-lo]
					}
					for d := 0; d < hd; d++ {
						dq[qi(b, h, i)+d] += dz * k[ki(b, g, j)+d]
						dk[ki(b, g, j)+d] += dz * q[qi(b, h, i)+d]
					}
				}
			}
		}
	}
	return out, dq, dk, dv
}

// runFusedAttention computes CausalAttention and its backward pass with threads CPU
// threads and returns the output and the gradients of q, k and v.
func runFusedAttention(t *testing.T, threads int, q, k, v, gO []float32, starts []int32, hd, H, KV, T, B int, o AttentionOptions) [][]float32 {
	cpu, err := NewCPUBackend(threads)
	require.NoError(t, err)
	t.Cleanup(func() { cpu.Close() })
	e := newEnv(t, cpu)
	Q := e.leaf(TypeF32, q, hd, H, T, B)
	K := e.leaf(TypeF32, k, hd, KV, T, B)
	V := e.leaf(TypeF32, v, hd, KV, T, B)
	G := e.leaf(TypeF32, gO, hd*H, T*B)
	if starts != nil {
		o.Starts = e.leafI32(starts, T*B)
	}
	return e.runAll(func(c *Context) []*Tensor {
		out := c.CausalAttention(Q, K, V, o)
		dq, dk, dv := c.CausalAttentionBack(Q, K, V, out, G, o)
		return []*Tensor{c.Cont(out), dq, c.Cont(dk), c.Cont(dv)}
	})
}

func TestCausalAttentionMatchesReference(t *testing.T) {
	cases := []struct {
		hd, H, KV, T, B int
		o               AttentionOptions
		docs            [][]int // packed: each sequence's document lengths
	}{
		{hd: 64, H: 4, KV: 2, T: 130, B: 2, o: AttentionOptions{Scale: 0.125}},
		{hd: 8, H: 2, KV: 1, T: 7, B: 1, o: AttentionOptions{Scale: 0.35}},
		{hd: 80, H: 2, KV: 2, T: 70, B: 1, o: AttentionOptions{Scale: 0.11}},
		{hd: 20, H: 6, KV: 3, T: 150, B: 1, o: AttentionOptions{Scale: 1, PreScale: 0.25, Softcap: 5, Window: 40}},
		{hd: 16, H: 2, KV: 1, T: 200, B: 2, o: AttentionOptions{Scale: 0.25, Window: 64}},
		// Documents that end inside a block, fill blocks, span several, or hold one token.
		{hd: 32, H: 4, KV: 2, T: 300, B: 2, o: AttentionOptions{Scale: 0.2}, docs: [][]int{{10, 54, 64, 1, 150, 21}, {300}}},
		{hd: 16, H: 3, KV: 3, T: 200, B: 2, o: AttentionOptions{Scale: 1, PreScale: 0.3, Softcap: 4, Window: 50},
			docs: [][]int{{1, 1, 128, 70}, {63, 2, 135}}},
	}
	for _, tc := range cases {
		name := fmt.Sprintf("hd%d_H%d_KV%d_T%d_B%d_cap%g_win%d_docs%d", tc.hd, tc.H, tc.KV, tc.T, tc.B, tc.o.Softcap, tc.o.Window, len(tc.docs))
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(tc.T), uint64(tc.hd)))
			hd, H, KV, T, B := tc.hd, tc.H, tc.KV, tc.T, tc.B
			q := randn(r, hd*H*T*B, 1)
			k := randn(r, hd*KV*T*B, 1)
			v := randn(r, hd*KV*T*B, 1)
			gO := randn(r, hd*H*T*B, 1)
			starts := docStarts(t, tc.docs, T)
			wantO, wantQ, wantK, wantV := attentionGradRef(to64(q), to64(k), to64(v), to64(gO), starts, hd, H, KV, T, B, tc.o)
			got := runFusedAttention(t, 2, q, k, v, gO, starts, hd, H, KV, T, B, tc.o)
			for i, want := range [][]float64{wantO, wantQ, wantK, wantV} {
				dmax, at := maxAbsDiff(got[i], want)
				assert.LessOrEqualf(t, dmax, 2e-5*maxAbs(want), "%s: max diff %g at %d (range %g)",
					[]string{"out", "dq", "dk", "dv"}[i], dmax, at, maxAbs(want))
			}
			// Every value is computed by one unit of work, whatever the threads.
			for _, n := range []int{1, 3} {
				assert.Equal(t, got, runFusedAttention(t, n, q, k, v, gO, starts, hd, H, KV, T, B, tc.o), "%d threads", n)
			}
			// Computing the score gradients again for dq gives the same bits as keeping them.
			rc := tc.o
			rc.Recompute = true
			assert.Equal(t, got, runFusedAttention(t, 2, q, k, v, gO, starts, hd, H, KV, T, B, rc), "recomputed score gradients")
		})
	}
}

// docStarts lays documents of the given lengths end to end in sequences of T tokens
// and returns each position's document start; nil for no documents.
func docStarts(t *testing.T, docs [][]int, T int) []int32 {
	if docs == nil {
		return nil
	}
	var starts []int32
	for _, lens := range docs {
		at := 0
		for _, n := range lens {
			for i := 0; i < n; i++ {
				starts = append(starts, int32(at))
			}
			at += n
		}
		require.Equal(t, T, at, "documents %v fill a sequence", lens)
	}
	return starts
}

func TestCausalAttentionRejectsMisfits(t *testing.T) {
	c, err := NewContext(64, 0)
	require.NoError(t, err)
	defer c.Close()
	q := c.NewTensor(TypeF32, 8, 3, 5, 1)
	k := c.NewTensor(TypeF32, 8, 2, 5, 1)
	assert.Error(t, Build(func() { c.CausalAttention(q, k, k, AttentionOptions{Scale: 1}) }), "3 heads over 2")
	k1 := c.NewTensor(TypeF32, 8, 1, 5, 1)
	assert.Error(t, Build(func() { c.CausalAttention(q, k1, k1, AttentionOptions{}) }), "zero scale")
	h := c.NewTensor(TypeF16, 8, 1, 5, 1)
	assert.Error(t, Build(func() { c.CausalAttention(q, h, h, AttentionOptions{Scale: 1}) }), "f16 keys")
	assert.NoError(t, Build(func() { c.CausalAttention(q, k1, k1, AttentionOptions{Scale: 1}) }))
	short := c.NewTensor(TypeI32, 4)
	assert.Error(t, Build(func() { c.CausalAttention(q, k1, k1, AttentionOptions{Scale: 1, Starts: short}) }), "4 starts for 5 queries")
	f := c.NewTensor(TypeF32, 5)
	assert.Error(t, Build(func() { c.CausalAttention(q, k1, k1, AttentionOptions{Scale: 1, Starts: f}) }), "f32 starts")
}

// BenchmarkCausalAttention runs the fused forward and backward passes on the 143m
// training shape (9 heads over 3 KV heads of 64, 512 tokens); GFLOP/s counts the
// products of the visible half only (two forward, five backward).
func BenchmarkCausalAttention(b *testing.B) {
	const hd, H, KV, T, B = 64, 9, 3, 512, 1
	r := rand.New(rand.NewPCG(1, 2))
	cpu, err := NewCPUBackend(2)
	require.NoError(b, err)
	defer cpu.Close()
	e := newEnv(b, cpu)
	Q := e.leaf(TypeF32, randn(r, hd*H*T*B, 1), hd, H, T, B)
	K := e.leaf(TypeF32, randn(r, hd*KV*T*B, 1), hd, KV, T, B)
	V := e.leaf(TypeF32, randn(r, hd*KV*T*B, 1), hd, KV, T, B)
	G := e.leaf(TypeF32, randn(r, hd*H*T*B, 1), hd*H, T*B)
	e.alloc()
	o := AttentionOptions{Scale: 0.125}
	var fwd *Graph
	var back [2]*Graph // keeping the score gradients, computing them again
	require.NoError(b, Build(func() {
		c := e.c
		out := c.CausalAttention(Q, K, V, o)
		fwd = c.NewGraph(64, false)
		fwd.Expand(out)
		for i, recompute := range []bool{false, true} {
			ro := o
			ro.Recompute = recompute
			dq, dk, dv := c.CausalAttentionBack(Q, K, V, out, G, ro)
			g := c.NewGraph(64, false)
			for _, x := range []*Tensor{dq, dk, dv} {
				g.Expand(x)
			}
			back[i] = g
		}
	}))
	bwd, bwdRecompute := back[0], back[1]
	s := e.scheduler()
	for _, g := range []*Graph{fwd, bwd, bwdRecompute} {
		require.NoError(b, s.Compute(g))
	}
	flops := func(n int) float64 { return float64(n) * 2 * hd * H * float64(T*(T+1)/2) * B }
	b.Run("forward", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			require.NoError(b, s.Compute(fwd))
		}
		b.ReportMetric(flops(2)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("backward", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			require.NoError(b, s.Compute(bwd))
		}
		b.ReportMetric(flops(5)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	// The same five products' worth of work per second, though it does seven.
	b.Run("backward-recompute", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			require.NoError(b, s.Compute(bwdRecompute))
		}
		b.ReportMetric(flops(5)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}

// TestCausalAttentionBackMemory checks what the two backward forms keep between their
// ops: the score gradients of the visible blocks, or nothing (Recompute, or past
// RecomputeAbove), dq then reading q, k, v, the forward result and the gradient again.
func TestCausalAttentionBackMemory(t *testing.T) {
	c, err := NewContext(64, 0)
	require.NoError(t, err)
	defer c.Close()
	for _, tc := range []struct {
		H, T      int
		recompute bool
		kept      bool
	}{
		{4, 130, false, true},
		{4, 130, true, false},
		{32, 4096, false, false}, // 32·4096²/2 floats: over RecomputeAbove
	} {
		const hd, KV, B = 8, 1, 1
		q := c.NewTensor(TypeF32, hd, tc.H, tc.T, B)
		k := c.NewTensor(TypeF32, hd, KV, tc.T, B)
		g := c.NewTensor(TypeF32, hd*tc.H, tc.T*B)
		var dq, dk *Tensor
		require.NoError(t, Build(func() {
			o := AttentionOptions{Scale: 1, Recompute: tc.recompute}
			dq, dk, _ = c.CausalAttentionBack(q, k, k, c.CausalAttention(q, k, k, o), g, o)
		}))
		kv := dk.p.view_src
		dkdv := int64(2 * hd * KV * tc.T * B)
		if tc.kept {
			assert.Greater(t, int64(kv.ne[0]), dkdv, "H=%d T=%d: score gradients kept", tc.H, tc.T)
			assert.Equal(t, kv, dq.p.src[1], "dq reads them")
		} else {
			assert.Equal(t, dkdv, int64(kv.ne[0]), "H=%d T=%d: only dk and dv", tc.H, tc.T)
			assert.Equal(t, kv.src[4], dq.p.src[4], "dq reads the gradient itself")
		}
	}
}
