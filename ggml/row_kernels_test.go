//go:build cgo

package ggml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The CPU's row kernels (ggml_vec_dot_f16, ggml_vec_mad_f16, ggml_vec_scale_f16,
// ggml_vec_dot_f32) run whole vectors over the tail of a row that is not a multiple of
// their unrolled step (ecotune's patch 0003: an attention head of 48, 80 or 96, or a LoRA
// rank of 8 or 16, was summed one element at a time on AVX-512). These tests give them
// rows of every kind of length, CPU only: the patch is in ggml-cpu.

// sixteenths returns n values m/256 with |m| ≤ 256: exact in F16, so that converting
// them loses nothing, and each product of two is a multiple of 2^-16 no larger than 1.
func sixteenths(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.IntN(513)-256) / 256
	}
	return v
}

// unitFloats returns n arbitrary floats in [-1, 1): sums of them round differently in any
// other order, unlike sixteenths.
func unitFloats(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = r.Float32()*2 - 1
	}
	return v
}

// rowLengths are row lengths around the kernels' steps (16 lanes × 4 on AVX-512, 8 × 4
// on AVX2): shorter than a vector, whole vectors short of a step, steps plus vectors,
// and ragged tails.
var rowLengths = []int{8, 24, 40, 48, 64, 80, 96, 112, 120, 128, 200}

// sixteenthsOf returns n values m/16 with |m| ≤ 16, for rows too long for sixteenths:
// each product of two is a multiple of 2^-8 no larger than 1.
func sixteenthsOf(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.IntN(33)-16) / 16
	}
	return v
}

// TestMulMatRows: an F16 or F32 weight times 1, 3, 8, 20 and 32 F32 columns (converted
// to F16 for the F16 weight, its vec_dot type) equals the float64 product exactly.
// Exactly, because every product is a multiple of 2^-16 of magnitude ≤ 1 and every
// partial sum, of at most 200 of them, is then a multiple of 2^-16 below 2^8: 24 bits,
// which float32 holds, in whatever order the kernel sums. Rows of 1040 take values m/16
// instead (products multiples of 2^-8, partial sums below 2^11: 19 bits). A
// skipped or repeated element, or a tail read from the wrong place, cannot pass. The
// columns cover tinyBLAS's few-columns paths (ecotune's patches 0002 and 0005): 3 and 8
// columns widened to F32 once per product up to k = 1024, 8 columns of 1040 read as they
// are, and an F32 k of 8 (a LoRA rank) in 256-bit vectors on AVX-512; 20 and 32 columns
// in blocks of 8 (patch 0007) while their F32 copy fits 32 KB, in tinyBLAS's tiles past it
// (but 5 rows, not a multiple of 4, in blocks at any size, and an F32 k of 8 or 16 in the
// transposed kernel from 16 columns: patch 0008); 45 columns of 16-bit values in panels
// of 8 on AVX-512 up to k = 1024 (patch 0018: two rows a pass, the last 5 columns and the
// odd row alone). The exception is ARM with FP16
// arithmetic, whose F16 kernels multiply and sum in half precision: there each of the k fused multiply-adds, and
// the at most 8 additions that reduce the vectors' lanes, may round its partial sum by
// half an F16 ulp, 2^-11 of a value at most Σ|w·x|, which bounds the difference instead.
func TestMulMatRows(t *testing.T) {
	be, err := NewCPUBackend(2)
	require.NoError(t, err)
	t.Cleanup(func() { be.Close() })
	r := rand.New(rand.NewPCG(3, 48))
	const m = 5
	for _, typ := range []Type{TypeF16, TypeF32} {
		for _, k := range append([]int{4, 12, 16, 1040}, rowLengths...) {
			for _, n := range []int{1, 3, 8, 20, 32, 45} {
				t.Run(fmt.Sprintf("%s/k%d/n%d", typ, k, n), func(t *testing.T) {
					values := sixteenths
					if k > 200 {
						values = sixteenthsOf
					}
					w, x := values(r, m*k), values(r, n*k)
					e := newEnv(t, be)
					W := e.leaf(typ, w, k, m)
					X := e.leaf(TypeF32, x, k, n)
					got := e.run(func(c *Context) *Tensor { return c.MulMat(W, X) })
					ref := matmulRef(to64(w), to64(x), k, m, n)
					for i := range ref {
						if typ == TypeF16 && runtime.GOARCH == "arm64" {
							j, row := i/m, i%m
							abs := 0.0
							for l := range k {
								abs += math.Abs(float64(w[row*k+l]) * float64(x[j*k+l]))
							}
							require.LessOrEqualf(t, math.Abs(ref[i]-float64(got[i])), float64(k+8)*math.Pow(2, -11)*abs, "element %d", i)
							continue
						}
						require.Equalf(t, ref[i], float64(got[i]), "element %d", i)
					}
				})
			}
		}
	}
}

// TestFlashAttnF16Heads: flash attention over an F16 K and V cache (llama.cpp's default)
// at every head size of rowLengths, against float64.
//
// With inputs in sixteenths and a power-of-two scale, each score is exact (as above),
// and so is Q's conversion to F16. What remains is the F16 accumulator of the weighted
// V rows (ggml's loop, kept on ARM and for heads that are not whole vectors; on x86 the
// rows of patch 0006 keep it in F32, which rounds less and passes the same bound): each
// of the T cells rounds it once when adding its row and at most once more
// when a new maximum rescales it, each time by at most 2^-11 of a value bounded by the
// running softmax sum times max|v|, which the final division by the sum turns into at
// most 2T·2^-11·max|v| on an output; expf's and the division's float32 roundings add
// a few 2^-24 on top.
func TestFlashAttnF16Heads(t *testing.T) {
	be, err := NewCPUBackend(2)
	require.NoError(t, err)
	t.Cleanup(func() { be.Close() })
	r := rand.New(rand.NewPCG(5, 80))
	const T, nHead, nKV = 7, 2, 1
	const scale = 0.125
	for _, hd := range rowLengths {
		t.Run(fmt.Sprintf("head%d", hd), func(t *testing.T) {
			q, k, v := sixteenths(r, hd*T*nHead), sixteenths(r, hd*T*nKV), sixteenths(r, hd*T*nKV)
			mask := make([]float32, T*T)
			for i := range T {
				for j := i + 1; j < T; j++ {
					mask[i*T+j] = float32(math.Inf(-1))
				}
			}
			e := newEnv(t, be)
			// Leaves [hd, heads, T], as causalAttentionRef reads them, permuted to the
			// [hd, T, heads] flash attention takes.
			Q := e.leaf(TypeF32, q, hd, nHead, T)
			K := e.leaf(TypeF16, k, hd, nKV, T)
			V := e.leaf(TypeF16, v, hd, nKV, T)
			M := e.leaf(TypeF16, padMask(mask, T, 64), T, 64)
			got := e.run(func(c *Context) *Tensor { // [hd, nHead, T]
				return c.FlashAttn(c.Permute(Q, 0, 2, 1, 3), c.Permute(K, 0, 2, 1, 3), c.Permute(V, 0, 2, 1, 3), M, scale, 0, 0)
			})
			ref := causalAttentionRef(to64(q), to64(k), to64(v), T, nHead, nKV, hd, scale)
			tol := 2*T*math.Pow(2, -11)*maxAbs(to64(v)) + 1e-5
			dmax, at := maxAbsDiff(got, ref)
			assert.LessOrEqualf(t, dmax, tol, "max diff %g at %d", dmax, at)
		})
	}
}

// TestMulMatColumnsAgree: on x86, a column's product has the same bits whatever the
// number of columns beside it, the property ecotune's batch-invariant decoding rests on
// (bindings.TestBatchInvariant checks it on whole models). Unlike TestMulMatRows the
// values are arbitrary floats, so any change in summation order shows. Each case takes a
// path of patch 0008 at its column count and compares its first and last two columns with
// 2 columns alone, which take the few-columns rows (patch 0002; a single column would go
// to ggml's vec_dot here, without llama.cpp's batch-invariant switch):
//   - F16 weights of 1001 and 50257 rows (not multiples of 4) at 33 and 40 columns,
//     which went to ggml's vec_dot before: blocks of 8 columns now (panels on AVX-512);
//   - F32 weights over k = 8 and 16 (a LoRA adapter's second product at rank 8 or 16) at
//     8, 12, 16 and 35 columns: the transposed kernel (from 8 columns since patch 0013);
//   - F16 and F32 weights of 1001 and 577 rows at 8 columns: two rows a pass on AVX-512
//     (patch 0017), the odd last row alone;
//   - F16 weights at 35 and 45 columns: panels of 8 columns on AVX-512 (patch 0018),
//     whose last, partial panel the last two columns check.
//
// That the values are the product TestMulMatRows checks, on the same paths (5 rows, F32
// k of 8 and 16, at 20 and 32 columns).
func TestMulMatColumnsAgree(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the column paths compared are x86 code (patches 0002, 0005, 0007, 0008)")
	}
	be, err := NewCPUBackend(2)
	require.NoError(t, err)
	t.Cleanup(func() { be.Close() })
	r := rand.New(rand.NewPCG(8, 1001))
	floats := func(n int) []float32 { return unitFloats(r, n) }
	cases := []struct {
		typ     Type
		m, k, n int
	}{
		{TypeF16, 1001, 288, 33}, {TypeF16, 1001, 288, 40}, {TypeF16, 50257, 64, 40},
		{TypeF32, 1536, 8, 16}, {TypeF32, 1536, 8, 35}, {TypeF32, 577, 16, 35}, {TypeF32, 100, 16, 100},
		{TypeF32, 288, 8, 8}, {TypeF32, 577, 16, 8}, {TypeF32, 768, 8, 12}, // from 8 columns (patch 0013)
		{TypeF32, 288, 8, 5}, {TypeF32, 577, 16, 6}, {TypeF32, 300, 32, 20}, {TypeF32, 33, 8, 50}, // from 5 columns, k of 32 (patch 0014)
		{TypeF32, 288, 24, 8}, {TypeF32, 100, 24, 40}, // three rank-8 adapters stacked (patch 0014)
		{TypeF16, 1001, 288, 8}, {TypeF16, 577, 768, 8}, {TypeF32, 1001, 288, 8}, // two rows a pass at 8 columns, an odd row left (patch 0017)
		{TypeF16, 1000, 288, 35}, {TypeF16, 577, 768, 45}, // panels of 8 columns (patch 0018), in chunks of rows at k = 768
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/m%d/k%d/n%d", c.typ, c.m, c.k, c.n), func(t *testing.T) {
			w, x := floats(c.m*c.k), floats(c.n*c.k)
			e := newEnv(t, be)
			W := e.leaf(c.typ, w, c.k, c.m)
			X := e.leaf(TypeF32, x, c.k, c.n)
			X2 := e.leaf(TypeF32, x[:2*c.k], c.k, 2)
			Xlast := e.leaf(TypeF32, x[(c.n-2)*c.k:], c.k, 2)
			outs := e.runAll(func(ctx *Context) []*Tensor {
				return []*Tensor{ctx.MulMat(W, X), ctx.MulMat(W, X2), ctx.MulMat(W, Xlast)}
			})
			many, first, last := outs[0], outs[1], outs[2]
			for _, cols := range []struct {
				name string
				at   int // the pair's first value in many
				two  []float32
			}{{"first", 0, first}, {"last", (c.n - 2) * c.m, last}} {
				differ := 0
				for i := range cols.two {
					if math.Float32bits(many[cols.at+i]) != math.Float32bits(cols.two[i]) {
						differ++
					}
				}
				require.Zerof(t, differ, "%d of the %s two columns' %d values differ between %d columns and 2", differ, cols.name, len(cols.two), c.n)
			}
		})
	}
}

// TestFlashAttnHeadsAgree: flash attention over an F16 cache for fewer than 64 queries a
// sequence (decode tokens, short prompts) takes a query's heads in groups on x86 (patch
// 0012: one pass over the cells, the heads' operations side by side; a prompt's rows
// handed out heads first); each head's output has the same bits as that head computed
// alone, which takes the one-head row of patch 0006 (TestFlashAttnF16Heads checks those
// values). Arbitrary floats, so any change in a head's order of operations shows; one
// query a sequence and seven (each its own mask row), heads sharing a KV head (9 over 3)
// and not (6 over 6), a third of the cells masked, one thread (9 heads in groups of 5 and
// 4) and two (chunks of the rows).
func TestFlashAttnHeadsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 48))
	floats := func(n int) []float32 { return unitFloats(r, n) }
	const nSeq, nCells, used = 3, 48, 32
	for _, threads := range []int{1, 2} {
		be, err := NewCPUBackend(threads)
		require.NoError(t, err)
		t.Cleanup(func() { be.Close() })
		for _, tc := range []struct{ hd, nHead, nKV, nQ int }{
			{48, 6, 6, 1}, {64, 9, 3, 1}, {128, 4, 2, 1}, {40, 3, 1, 1}, {48, 6, 6, 7}, {64, 9, 3, 7},
		} {
			t.Run(fmt.Sprintf("threads%d/head%d/%dover%d/queries%d", threads, tc.hd, tc.nHead, tc.nKV, tc.nQ), func(t *testing.T) {
				hd, nHead, nKV, nQ := tc.hd, tc.nHead, tc.nKV, tc.nQ
				mask := make([]float32, nCells*64)
				for q := range 64 {
					for c := range nCells {
						if c >= used-nQ+1+q { // query q sees the cells up to its own
							mask[q*nCells+c] = float32(math.Inf(-1))
						}
					}
				}
				e := newEnv(t, be)
				Q := e.leaf(TypeF32, floats(hd*nQ*nHead*nSeq), hd, nQ, nHead, nSeq)
				K := e.leaf(TypeF16, floats(hd*nCells*nKV*nSeq), hd, nCells, nKV, nSeq)
				V := e.leaf(TypeF16, floats(hd*nCells*nKV*nSeq), hd, nCells, nKV, nSeq)
				M := e.leaf(TypeF16, mask, nCells, 64)
				const scale = 0.125
				outs := e.runAll(func(c *Context) []*Tensor {
					ts := []*Tensor{c.FlashAttn(Q, K, V, M, scale, 0, 0)} // [hd, nHead, nQ, nSeq]
					for h := range nHead {
						kv := h / (nHead / nKV)
						q := c.View(Q, []int{hd, nQ, 1, nSeq}, []int{hd * 4, hd * nQ * 4, hd * nQ * nHead * 4}, h*hd*nQ*4)
						k := c.View(K, []int{hd, nCells, 1, nSeq}, []int{hd * 2, hd * nCells * 2, hd * nCells * nKV * 2}, kv*hd*nCells*2)
						v := c.View(V, []int{hd, nCells, 1, nSeq}, []int{hd * 2, hd * nCells * 2, hd * nCells * nKV * 2}, kv*hd*nCells*2)
						ts = append(ts, c.FlashAttn(q, k, v, M, scale, 0, 0)) // [hd, 1, nQ, nSeq]
					}
					return ts
				})
				all := outs[0]
				for h := range nHead {
					for s := range nSeq {
						for q := range nQ {
							got := all[((s*nQ+q)*nHead+h)*hd:][:hd]
							alone := outs[1+h][(s*nQ+q)*hd:][:hd]
							for d := range hd {
								require.Equalf(t, math.Float32bits(alone[d]), math.Float32bits(got[d]),
									"head %d, sequence %d, query %d, value %d: %g alone, %g among the heads", h, s, q, d, alone[d], got[d])
							}
						}
					}
				}
				assert.Greater(t, maxAbs(to64(all)), 0.01, "the output is not all zeros")
			})
		}
	}
}

// TestFlashAttnMaskedRuns: a decode token's cache is mostly masked cells (a sequence's
// stream holds its ctx cells, the used ones first), which flash attention on x86 passes
// 16 at a time (patch 0022); here each query sees three short runs of cells between long
// masked ones (32 and 30 cells, and 7), against float64 over the visible cells alone.
// Inputs in sixteenths make every score exact, as in TestFlashAttnF16Heads, whose bound
// this takes over the visible cells: a visible cell passed over, or a masked one taken,
// moves an output by about its softmax weight times a value of V, several times the bound.
func TestFlashAttnMaskedRuns(t *testing.T) {
	r := rand.New(rand.NewPCG(22, 80))
	const hd, nHead, nCells, nQ = 48, 6, 80, 2
	const scale = 0.125
	visible := [nQ][]int{
		{0, 1, 2, 3, 4, 37, 38, 39, 70, 71, 72},
		{0, 1, 2, 16, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 79},
	}
	mask := make([]float32, nCells*64)
	for i := range mask {
		mask[i] = float32(math.Inf(-1))
	}
	for q, cells := range visible {
		for _, c := range cells {
			mask[q*nCells+c] = 0
		}
	}
	q, k, v := sixteenths(r, hd*nQ*nHead), sixteenths(r, hd*nCells*nHead), sixteenths(r, hd*nCells*nHead)
	ref := make([]float64, hd*nHead*nQ) // [hd, nHead, nQ]
	for qi, cells := range visible {
		for h := range nHead {
			scores := make([]float64, len(cells))
			for j, c := range cells {
				for l := range hd {
					scores[j] += float64(q[(h*nQ+qi)*hd+l]) * float64(k[(h*nCells+c)*hd+l])
				}
				scores[j] *= scale
			}
			p := softmaxRef(scores)
			for l := range hd {
				for j, c := range cells {
					ref[(qi*nHead+h)*hd+l] += p[j] * float64(v[(h*nCells+c)*hd+l])
				}
			}
		}
	}
	tol := 2*float64(len(visible[1]))*math.Pow(2, -11)*maxAbs(to64(v)) + 1e-5
	for _, threads := range []int{1, 2} {
		t.Run(fmt.Sprintf("threads%d", threads), func(t *testing.T) {
			be, err := NewCPUBackend(threads)
			require.NoError(t, err)
			t.Cleanup(func() { be.Close() })
			e := newEnv(t, be)
			Q := e.leaf(TypeF32, q, hd, nQ, nHead, 1)
			K := e.leaf(TypeF16, k, hd, nCells, nHead, 1)
			V := e.leaf(TypeF16, v, hd, nCells, nHead, 1)
			M := e.leaf(TypeF16, mask, nCells, 64)
			got := e.run(func(c *Context) *Tensor { return c.FlashAttn(Q, K, V, M, scale, 0, 0) })
			dmax, at := maxAbsDiff(got, ref)
			assert.LessOrEqualf(t, dmax, tol, "max diff %g at %d", dmax, at)
		})
	}
}
