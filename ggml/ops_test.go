//go:build cgo

package ggml

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTypeTraits(t *testing.T) {
	// Sizes from ggml-common.h's block structs.
	want := map[Type][2]int{
		TypeF32: {1, 4}, TypeF16: {1, 2}, TypeBF16: {1, 2}, TypeQ8_0: {32, 34},
		TypeQ4_0: {32, 18}, TypeQ4_K: {256, 144}, TypeIQ4_NL: {32, 18}, TypeI32: {1, 4},
	}
	for typ, bs := range want {
		assert.Equal(t, bs[0], typ.BlockSize(), typ.String())
		assert.Equal(t, bs[1], typ.TypeSize(), typ.String())
	}
	all := Types()
	assert.Greater(t, len(all), 30, "ggml knows many types, new ones included")
	for _, typ := range all {
		got, err := ParseType(typ.String())
		require.NoError(t, err)
		assert.Equal(t, typ, got)
	}
	q, err := ParseType("q4_k")
	require.NoError(t, err)
	assert.Equal(t, TypeQ4_K, q)
	_, err = ParseType("nf4")
	assert.Error(t, err)
	assert.False(t, Type(4).Valid(), "Q4_2 was removed from ggml")
}

// weightTypes are the frozen-base types the trainer must support.
var weightTypes = []Type{TypeF32, TypeF16, TypeBF16, TypeQ8_0, TypeQ4_0, TypeQ4_K, TypeIQ4_NL}

func TestQuantizeMatchesReferenceDecoder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	src := randn(r, 4*256, 1)
	for _, typ := range weightTypes {
		b, err := Quantize(typ, src, 256)
		require.NoError(t, err, typ.String())
		require.Len(t, b, 4*typ.RowSize(256))
		got, err := Dequantize(typ, b, len(src))
		require.NoError(t, err)
		ref := decodeRef(t, typ, b, len(src))
		d, at := maxAbsDiff(got, ref)
		assert.LessOrEqualf(t, d, 1e-6, "%s: ggml's decoder and the spec decoder differ at %d", typ, at)
		// Reconstruction error bounds per type (relative RMS on Gaussian data).
		var se, ss float64
		for i := range src {
			e := float64(src[i]) - ref[i]
			se += e * e
			ss += float64(src[i]) * float64(src[i])
		}
		rel := math.Sqrt(se / ss)
		limit := map[Type]float64{TypeF32: 0, TypeF16: 1e-3, TypeBF16: 5e-3, TypeQ8_0: 1e-2, TypeQ4_0: 0.15, TypeQ4_K: 0.12, TypeIQ4_NL: 0.12}[typ]
		assert.LessOrEqualf(t, rel, limit, "%s relative RMS error", typ)
	}
	_, err := Quantize(TypeQ4_K, src[:100], 100)
	assert.Error(t, err, "row not a multiple of the block")
	_, err = Dequantize(TypeQ8_0, make([]byte, 33), 32)
	assert.Error(t, err, "wrong byte count")
}

func TestMulMat(t *testing.T) {
	const k, m, n = 256, 24, 7
	for _, be := range testBackends(t) {
		for _, typ := range weightTypes {
			t.Run(be.Name()+"/"+typ.String(), func(t *testing.T) {
				e := newEnv(t, be)
				wq, x, W, X := e.product(typ, 7, k, m, n)
				got := e.run(func(c *Context) *Tensor { return c.MulMat(W, X) })
				wref := decodeRef(t, typ, wq, k*m)
				ref := matmulRef(wref, to64(x), k, m, n)
				// ggml rounds x to the weight's dot-product type (f16, bf16, q8_0/q8_K) for
				// speed, so the error bound scales with |w_i|·|x_j| and that rounding.
				tol := map[Type]float64{TypeF32: 1e-5, TypeF16: 2e-3, TypeBF16: 1e-2, TypeQ8_0: 1e-2, TypeQ4_0: 1e-2, TypeQ4_K: 1e-2, TypeIQ4_NL: 1e-2}[typ]
				for j := 0; j < n; j++ {
					for i := 0; i < m; i++ {
						var nw, nx float64
						for l := 0; l < k; l++ {
							nw += wref[i*k+l] * wref[i*k+l]
							nx += float64(x[j*k+l]) * float64(x[j*k+l])
						}
						bound := tol * math.Sqrt(nw*nx)
						d := math.Abs(float64(got[j*m+i]) - ref[j*m+i])
						require.LessOrEqualf(t, d, bound, "y[%d][%d] = %g, reference %g", j, i, got[j*m+i], ref[j*m+i])
					}
				}
			})
		}
	}
}

func TestElementwiseAndNorms(t *testing.T) {
	const n, rows = 64, 5
	for _, be := range testBackends(t) {
		t.Run(be.Name(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			x := randn(r, n*rows, 2)
			e := newEnv(t, be)
			X := e.leaf(TypeF32, x, n, rows)
			got := e.run(func(c *Context) *Tensor { return c.RMSNorm(X, 1e-5) })
			d, _ := maxAbsDiff(got, rmsNormRef(to64(x), n, 1e-5))
			assert.LessOrEqual(t, d, 1e-5, "rms_norm")

			got = e.run(func(c *Context) *Tensor { return c.SoftMax(X, nil, 0.5, 0) })
			for row := 0; row < rows; row++ {
				in := to64(x[row*n : (row+1)*n])
				for i := range in {
					in[i] *= 0.5
				}
				d, _ := maxAbsDiff(got[row*n:(row+1)*n], softmaxRef(in))
				assert.LessOrEqual(t, d, 1e-6, "soft_max row %d", row)
			}

			got = e.run(func(c *Context) *Tensor { return c.SiLU(X) })
			for i, v := range x {
				want := float64(v) / (1 + math.Exp(-float64(v)))
				require.InDelta(t, want, got[i], 1e-5, "silu %d", i)
			}
			got = e.run(func(c *Context) *Tensor { return c.Exp(X) })
			for i, v := range x {
				want := math.Exp(float64(v))
				require.InDelta(t, want, got[i], 1e-6*(1+want), "exp %d", i)
			}
			got = e.run(func(c *Context) *Tensor { return c.Softplus(X) })
			for i, v := range x {
				require.InDelta(t, math.Log1p(math.Exp(float64(v))), got[i], 1e-6, "softplus %d", i)
			}
			got = e.run(func(c *Context) *Tensor { return c.Norm(X, 1e-5) })
			for row := 0; row < rows; row++ {
				in := to64(x[row*n : (row+1)*n])
				mean, vr := 0.0, 0.0
				for _, v := range in {
					mean += v
				}
				mean /= n
				for _, v := range in {
					vr += (v - mean) * (v - mean)
				}
				vr /= n
				for i, v := range in {
					require.InDelta(t, (v-mean)/math.Sqrt(vr+1e-5), got[row*n+i], 1e-5)
				}
			}
		})
	}
}

func TestRope(t *testing.T) {
	const headDim, heads, tokens = 16, 3, 5
	pos := []int32{0, 1, 2, 7, 100}
	for _, be := range testBackends(t) {
		for _, c := range []struct {
			name string
			mode int
			dims int
		}{{"normal", RopeNormal, 16}, {"neox", RopeNeoX, 16}, {"neox-partial", RopeNeoX, 8}, {"normal-partial", RopeNormal, 8}} {
			t.Run(be.Name()+"/"+c.name, func(t *testing.T) {
				r := rand.New(rand.NewPCG(5, 6))
				x := randn(r, headDim*heads*tokens, 1)
				e := newEnv(t, be)
				X := e.leaf(TypeF32, x, headDim, heads, tokens)
				P := e.leafI32(pos, tokens)
				got := e.run(func(ctx *Context) *Tensor {
					return ctx.Rope(X, P, nil, RopeOptions{Dims: c.dims, Mode: c.mode, FreqBase: 10000})
				})
				ref := ropeRef(to64(x), headDim, heads, tokens, pos, c.dims, c.mode == RopeNeoX, 10000)
				d, at := maxAbsDiff(got, ref)
				assert.LessOrEqualf(t, d, 1e-4, "max diff at %d", at)
			})
		}
	}
}

// TestAttentionBlock runs a grouped-query causal self-attention block (projections,
// RoPE, masked softmax, output projection) two ways — explicit ops and flash
// attention — against a float64 reference.
func TestAttentionBlock(t *testing.T) {
	const d, T, nHead, nKV, hd = 64, 7, 4, 2, 16
	r := rand.New(rand.NewPCG(8, 9))
	x := randn(r, d*T, 1)
	wq := randn(r, d*nHead*hd, 0.15)
	wk := randn(r, d*nKV*hd, 0.15)
	wv := randn(r, d*nKV*hd, 0.15)
	wo := randn(r, nHead*hd*d, 0.15)
	pos := make([]int32, T)
	for i := range pos {
		pos[i] = int32(i)
	}
	ref := attentionRef(to64(x), to64(wq), to64(wk), to64(wv), to64(wo), d, T, nHead, nKV, hd, pos)
	mask := make([]float32, T*T)
	for i := 0; i < T; i++ {
		for j := 0; j < T; j++ {
			if j > i {
				mask[i*T+j] = float32(math.Inf(-1))
			}
		}
	}
	scale := float32(1 / math.Sqrt(hd))
	rope := RopeOptions{Dims: hd, Mode: RopeNormal, FreqBase: 10000}
	for _, be := range testBackends(t) {
		for _, flash := range []bool{false, true} {
			name := be.Name() + "/explicit"
			if flash {
				name = be.Name() + "/flash"
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, be)
				X := e.leaf(TypeF32, x, d, T)
				Wq := e.leaf(TypeF32, wq, d, nHead*hd)
				Wk := e.leaf(TypeF32, wk, d, nKV*hd)
				Wv := e.leaf(TypeF32, wv, d, nKV*hd)
				Wo := e.leaf(TypeF32, wo, nHead*hd, d)
				P := e.leafI32(pos, T)
				var M *Tensor
				if flash {
					// Flash attention wants an f16 mask padded to a multiple of its tile.
					M = e.leaf(TypeF16, padMask(mask, T, 64), T, 64)
				} else {
					M = e.leaf(TypeF32, mask, T, T)
				}
				got := e.run(func(c *Context) *Tensor {
					q := c.Rope(c.Reshape(c.MulMat(Wq, X), hd, nHead, T), P, nil, rope)
					k := c.Rope(c.Reshape(c.MulMat(Wk, X), hd, nKV, T), P, nil, rope)
					v := c.Reshape(c.MulMat(Wv, X), hd, nKV, T)
					q = c.Permute(q, 0, 2, 1, 3) // [hd, T, nHead]
					k = c.Permute(k, 0, 2, 1, 3) // [hd, T, nKV]
					var o *Tensor
					if flash {
						v = c.Permute(v, 0, 2, 1, 3)             // [hd, T, nKV]
						o = c.FlashAttn(q, k, v, M, scale, 0, 0) // [hd, nHead, T]
						o = c.Reshape(c.Cont(o), hd*nHead, T)
					} else {
						kq := c.SoftMax(c.MulMat(k, q), M, scale, 0) // [T_k, T_q, nHead]
						vt := c.Cont(c.Permute(v, 1, 2, 0, 3))       // [T, hd, nKV]
						o = c.MulMat(vt, kq)                         // [hd, T_q, nHead]
						o = c.Reshape(c.Cont(c.Permute(o, 0, 2, 1, 3)), hd*nHead, T)
					}
					return c.MulMat(Wo, o)
				})
				tol := 1e-4
				if flash {
					tol = 5e-3 // flash attention keeps K·Q and V in f16
				}
				dmax, at := maxAbsDiff(got, ref)
				assert.LessOrEqualf(t, dmax, tol*maxAbs(ref), "max diff %g at %d (ref range %g)", dmax, at, maxAbs(ref))
			})
		}
	}
}

func padMask(mask []float32, T, rows int) []float32 {
	out := make([]float32, T*rows)
	copy(out, mask)
	for i := T * T; i < len(out); i++ {
		out[i] = float32(math.Inf(-1))
	}
	return out
}

func attentionRef(x, wq, wk, wv, wo []float64, d, T, nHead, nKV, hd int, pos []int32) []float64 {
	q := ropeRef(matmulRef(wq, x, d, nHead*hd, T), hd, nHead, T, pos, hd, false, 10000)
	k := ropeRef(matmulRef(wk, x, d, nKV*hd, T), hd, nKV, T, pos, hd, false, 10000)
	v := matmulRef(wv, x, d, nKV*hd, T)
	o := causalAttentionRef(q, k, v, T, nHead, nKV, hd, 1/math.Sqrt(float64(hd)))
	return matmulRef(wo, o, nHead*hd, d, T)
}

func TestShapeErrorsAreErrors(t *testing.T) {
	c, err := NewContext(16, 16)
	require.NoError(t, err)
	defer c.Close()
	a := c.NewTensor(TypeF32, 4, 3)
	b := c.NewTensor(TypeF32, 5, 2)
	cases := map[string]func(){
		"mul_mat":   func() { c.MulMat(a, b) },
		"add":       func() { c.Add(a, b) },
		"reshape":   func() { c.Reshape(a, 5, 5) },
		"view":      func() { c.View(a, []int{4, 4}, []int{16}, 0) },
		"get_rows":  func() { c.GetRows(a, b) },
		"concat":    func() { c.Concat(a, b, 0) },
		"rope":      func() { c.Rope(a, b, nil, RopeOptions{Dims: 4}) },
		"q4_k row":  func() { c.NewTensor(TypeQ4_K, 100, 2) },
		"too many":  func() { c.NewTensor(TypeF32, 1, 1, 1, 1, 1) },
		"graph big": func() { c.NewGraph(1<<20, true) },
	}
	for name, f := range cases {
		err := Build(f)
		var opErr *OpError
		assert.ErrorAsf(t, err, &opErr, "%s must be an *OpError, not an abort", name)
	}
	// A full context is an error, not a ggml assert.
	small, err := NewContext(2, 0)
	require.NoError(t, err)
	defer small.Close()
	err = Build(func() {
		for i := 0; i < 10; i++ {
			small.NewTensor(TypeF32, 4)
		}
	})
	assert.Error(t, err)
}

func TestCloseAndUseAfterClose(t *testing.T) {
	be, err := NewCPUBackend(1)
	require.NoError(t, err)
	c, err := NewContext(4, 8)
	require.NoError(t, err)
	x := c.NewTensor(TypeF32, 4)
	buf, err := c.AllocTensors(be)
	require.NoError(t, err)
	require.NoError(t, x.SetF32([]float32{1, 2, 3, 4}))
	v, err := x.F32()
	require.NoError(t, err)
	assert.Equal(t, []float32{1, 2, 3, 4}, v)
	assert.Error(t, x.SetF32([]float32{1}), "wrong length")

	require.NoError(t, buf.Close())
	require.NoError(t, buf.Close())
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	_, err = x.F32()
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, Build(func() { c.NewTensor(TypeF32, 2) }), ErrClosed)
	assert.ErrorIs(t, Build(func() { x.Shape() }), ErrClosed)
	require.NoError(t, be.Close())
	require.NoError(t, be.Close())
	var nilCtx *Context
	assert.NoError(t, nilCtx.Close())
}
