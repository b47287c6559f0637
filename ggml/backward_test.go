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

// TestOutProdsAsMatMulWeights checks the rewritten input gradient of y = W·x for every weight
// type against the float64 gradient of L = Σy², 2·Wᵀy, with W as ggml stores it.
func TestOutProdsAsMatMulWeights(t *testing.T) {
	const n = 5
	for _, be := range testBackends(t) {
		for _, typ := range weightTypes {
			for _, mode := range []struct {
				quantT Type
				fused  bool // DequantTranspose, on the CPU
			}{{TypeF32, false}, {TypeF16, false}, {TypeBF16, false}, {TypeF32, true}, {TypeBF16, true}} {
				quantT, fused := mode.quantT, mode.fused
				if (quantT != TypeF32 || fused) && !typ.IsQuantized() {
					continue // the type of Wᵀ only matters for quantized W
				}
				if fused && !be.IsCPU() {
					continue
				}
				// Rows of 96 or 576 values (types of 32-value blocks) are dequantized
				// 8 or 4 at a time, as one row of whole 256-value super-blocks.
				ks := []int{256}
				if typ.BlockSize() < 256 {
					ks = append(ks, 96, 576)
				}
				// 4096 rows are transposed in bands of 64, fewer in one go; an F32 or
				// F16 W of 40 rows keeps its out_prod (a sum too short for tiles).
				for _, k := range ks {
					for _, m := range []int{40, 192, 4096} {
						if k != 256 && m == 4096 {
							continue
						}
						name := fmt.Sprintf("%s/%s/%s/%dx%d", be.Name(), typ, quantT, k, m)
						if fused {
							name += "/fused"
						}
						t.Run(name, func(t *testing.T) {
							e := newEnv(t, be)
							wq, _, W, X := e.product(typ, 17, k, m, n)
							e.alloc()
							var run *Graph
							var y, loss, seed, gradX *Tensor
							want := 1
							if m < 64 && (typ == TypeF32 || typ == TypeF16) {
								want = 0
							}
							require.NoError(t, Build(func() {
								X.SetParam()
								y = e.c.MulMat(W, X).SetOutput()
								loss = e.c.Sum(e.c.Sqr(y)).SetLoss().SetOutput()
								g := e.c.NewGraph(256, true)
								g.Expand(loss)
								g.BuildBackward(e.c)
								require.Equal(t, 1, countOps(g, "OUT_PROD"))
								require.Equal(t, want, g.OutProdsAsMatMul(e.c, quantT, nil, fused))
								seed, gradX = g.Grad(loss).SetInput(), g.Grad(X).SetOutput()
								run = e.c.NewGraph(256, false)
								run.ExpandFrom(g, []*Tensor{y, loss, gradX}, nil)
							}))
							if want == 1 {
								assert.Zero(t, countOps(run, "OUT_PROD"), "out_prod left in the graph")
							}
							if fused && want == 1 {
								assert.Equal(t, 1, countOps(run, "CUSTOM"), "the copy is one fused op")
								assert.Zero(t, countOps(run, "GET_ROWS"))
							}
							for i := 0; i < run.Len(); i++ {
								if nd := run.Node(i); nd.Op() == "GET_ROWS" {
									assert.Zero(t, nd.Src(0).Ne(0)%256, "get_rows dequantizes whole super-blocks (CUDA's IQ4_NL kernel needs them)")
								}
							}
							s := e.scheduler()
							require.NoError(t, s.Alloc(run))
							require.NoError(t, seed.SetF32([]float32{1}))
							require.NoError(t, s.Run(run))

							// The forward product's own rounding (x to 8-bit blocks for quantized W) is
							// TestMulMat's business; here y is taken as ggml computed it.
							wref := decodeRef(t, typ, wq, k*m)
							yv, err := y.F32()
							require.NoError(t, err)
							gx, err := gradX.F32()
							require.NoError(t, err)
							// An F16 or BF16 Wᵀ rounds the gradient to its type (the product's operand type), so
							// the bound scales with the terms' sizes.
							wtType := typ
							if typ.IsQuantized() {
								wtType = quantT
							}
							tol := map[Type]float64{TypeF32: 1e-5, TypeF16: 2e-3, TypeBF16: 1e-2}[wtType]
							for j := 0; j < n; j++ {
								for l := 0; l < k; l++ {
									want, size := 0.0, 0.0
									for i := 0; i < m; i++ {
										want += 2 * float64(yv[j*m+i]) * wref[i*k+l]
										size += math.Abs(2 * float64(yv[j*m+i]) * wref[i*k+l])
									}
									require.InDeltaf(t, want, gx[j*k+l], tol*size+1e-6, "dL/dx[%d][%d]", j, l)
								}
							}
						})
					}
				}
			}
		}
	}
}

func countOps(g *Graph, op string) int {
	n := 0
	for i := 0; i < g.Len(); i++ {
		if g.Node(i).Op() == op {
			n++
		}
	}
	return n
}

// TestOutProdsAsMatMulProducts checks the rewrites of both operands' gradients against
// the float64 gradients of L = Σy², with both operands trained: a batched product whose
// first operand is broadcast over the second's heads (grouped-query attention's shape),
// and a LoRA B-like product over a rank of 8, whose first-operand gradient becomes the
// transposed outer product.
func TestOutProdsAsMatMulProducts(t *testing.T) {
	for _, sh := range []struct {
		k, m, n, ha, h int
		outProds       int // OUT_PROD nodes left after the rewrite
	}{
		{64, 128, 192, 2, 4, 0},
		{8, 96, 40, 1, 1, 1},
	} {
		k, m, n, ha, h := sh.k, sh.m, sh.n, sh.ha, sh.h
		r := rand.New(rand.NewPCG(5, 6))
		a := randn(r, k*m*ha, 0.5)
		x := randn(r, k*n*h, 1)
		for _, be := range testBackends(t) {
			t.Run(fmt.Sprintf("%s/%dx%dx%d", be.Name(), k, m, n), func(t *testing.T) {
				e := newEnv(t, be)
				A := e.leaf(TypeF32, a, k, m, ha)
				X := e.leaf(TypeF32, x, k, n, h)
				e.alloc()
				var run *Graph
				var seed, gradA, gradX *Tensor
				require.NoError(t, Build(func() {
					A.SetParam()
					X.SetParam()
					loss := e.c.Sum(e.c.Sqr(e.c.MulMat(A, X))).SetLoss().SetOutput()
					g := e.c.NewGraph(256, true)
					g.Expand(loss)
					g.BuildBackward(e.c)
					require.Equal(t, 2, countOps(g, "OUT_PROD"))
					require.Equal(t, 2, g.OutProdsAsMatMul(e.c, TypeF32, nil, false))
					seed, gradA, gradX = g.Grad(loss).SetInput(), g.Grad(A).SetOutput(), g.Grad(X).SetOutput()
					run = e.c.NewGraph(256, false)
					run.ExpandFrom(g, []*Tensor{gradA, gradX}, nil)
				}))
				assert.Equal(t, sh.outProds, countOps(run, "OUT_PROD"))
				s := e.scheduler()
				require.NoError(t, s.Alloc(run))
				require.NoError(t, seed.SetF32([]float32{1}))
				require.NoError(t, s.Run(run))

				y := make([]float64, m*n*h) // y[hh][j][i] = Σ_l A[hh·ha/h][i][l]·X[hh][j][l]
				ai := func(hh, i, l int) int { return (hh*ha/h*m+i)*k + l }
				for hh := 0; hh < h; hh++ {
					for j := 0; j < n; j++ {
						for i := 0; i < m; i++ {
							v := 0.0
							for l := 0; l < k; l++ {
								v += float64(a[ai(hh, i, l)]) * float64(x[(hh*n+j)*k+l])
							}
							y[(hh*n+j)*m+i] = v
						}
					}
				}
				wantA, wantX := make([]float64, len(a)), make([]float64, len(x))
				for hh := 0; hh < h; hh++ {
					for j := 0; j < n; j++ {
						for i := 0; i < m; i++ {
							dy := 2 * y[(hh*n+j)*m+i]
							for l := 0; l < k; l++ {
								wantA[ai(hh, i, l)] += dy * float64(x[(hh*n+j)*k+l])
								wantX[(hh*n+j)*k+l] += dy * float64(a[ai(hh, i, l)])
							}
						}
					}
				}
				for _, c := range []struct {
					name string
					got  *Tensor
					want []float64
				}{{"dL/dA", gradA, wantA}, {"dL/dX", gradX, wantX}} {
					got, err := c.got.F32()
					require.NoError(t, err)
					d, at := maxAbsDiff(got, c.want)
					assert.LessOrEqualf(t, d, 1e-4*maxAbs(c.want), "%s: max diff %g at %d", c.name, d, at)
				}
			})
		}
	}
}

// BenchmarkTranspose compares the banded transposition with ggml's plain
// cont(transpose(a)) on the output layer of a 32,000-token vocabulary.
func BenchmarkTranspose(b *testing.B) {
	const n, m = 288, 32000
	cpu, err := NewCPUBackend(1)
	require.NoError(b, err)
	defer cpu.Close()
	for _, banded := range []bool{false, true} {
		b.Run(fmt.Sprintf("banded=%v", banded), func(b *testing.B) {
			e := newEnv(b, cpu)
			a := e.leaf(TypeF32, make([]float32, n*m), n, m)
			e.alloc()
			var g *Graph
			require.NoError(b, Build(func() {
				var out *Tensor
				if banded {
					out = transpose(e.c, a)
				} else {
					out = e.c.Cont(e.c.Transpose(a))
				}
				g = e.c.NewGraph(64, false)
				g.Expand(out)
			}))
			s := e.scheduler()
			require.NoError(b, s.Alloc(g))
			b.ResetTimer()
			for range b.N {
				require.NoError(b, s.Run(g))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n*m), "ns/value")
		})
	}
}

// TestContiguousRopeGrads checks the gradient of L = Σ w·z², z = cont(permute(rope(X)))
// (attention's order of heads and tokens, as the trainer's generic graph has it) against
// float64: rope's gradient is the inverse rotation of 2·w·z, permuted back. Autograd
// hands ROPE_BACK the permuted view, which CUDA's rope rejects; after the rewrite every
// ROPE_BACK reads a source it takes.
func TestContiguousRopeGrads(t *testing.T) {
	const hd, heads, tokens, seqs = 8, 3, 5, 2
	r := rand.New(rand.NewPCG(9, 10))
	x := randn(r, hd*heads*tokens*seqs, 1)
	w := randn(r, len(x), 1)
	pos := []int32{0, 1, 2, 3, 4}
	rope := RopeOptions{Dims: hd, Mode: RopeNormal, FreqBase: 10000}
	for _, be := range testBackends(t) {
		t.Run(be.Name(), func(t *testing.T) {
			e := newEnv(t, be)
			X := e.leaf(TypeF32, x, hd, heads, tokens, seqs)
			W := e.leaf(TypeF32, w, hd, tokens, heads, seqs)
			P := e.leafI32(pos, tokens)
			e.alloc()
			var run *Graph
			var seed, gradX *Tensor
			require.NoError(t, Build(func() {
				X.SetParam()
				z := e.c.Cont(e.c.Permute(e.c.Rope(X, P, nil, rope), 0, 2, 1, 3))
				loss := e.c.Sum(e.c.Mul(e.c.Sqr(z), W)).SetLoss().SetOutput()
				g := e.c.NewGraph(256, true)
				g.Expand(loss)
				g.BuildBackward(e.c)
				require.Equal(t, 1, countOps(g, "ROPE_BACK"))
				require.Equal(t, 1, g.ContiguousRopeGrads(e.c))
				require.Zero(t, g.ContiguousRopeGrads(e.c), "a second pass finds nothing to copy")
				seed, gradX = g.Grad(loss).SetInput(), g.Grad(X).SetOutput()
				run = e.c.NewGraph(256, false)
				run.ExpandFrom(g, []*Tensor{gradX}, nil)
			}))
			for i := 0; i < run.Len(); i++ {
				if n := run.Node(i); n.Op() == "ROPE_BACK" {
					src := n.Src(0)
					assert.True(t, src.IsContiguous(), "ROPE_BACK reads %v with strides %d %d %d %d", src.Ne4(), src.Nb(0), src.Nb(1), src.Nb(2), src.Nb(3))
				}
			}
			s := e.scheduler()
			require.NoError(t, s.Alloc(run))
			require.NoError(t, seed.SetF32([]float32{1}))
			require.NoError(t, s.Run(run))

			// Per sequence, ropeRef's layout [tokens][heads][hd] is ggml's [hd, heads, tokens];
			// w and z are [hd, tokens, heads]. Rotating by -pos undoes the rotation.
			neg := make([]int32, len(pos))
			for i, p := range pos {
				neg[i] = -p
			}
			want := make([]float64, 0, len(x))
			per := hd * heads * tokens
			for b := 0; b < seqs; b++ {
				y := ropeRef(to64(x[b*per:(b+1)*per]), hd, heads, tokens, pos, hd, false, 10000)
				for tk := 0; tk < tokens; tk++ {
					for h := 0; h < heads; h++ {
						for i := 0; i < hd; i++ {
							y[(tk*heads+h)*hd+i] *= 2 * float64(w[b*per+(h*tokens+tk)*hd+i])
						}
					}
				}
				want = append(want, ropeRef(y, hd, heads, tokens, neg, hd, false, 10000)...)
			}
			got, err := gradX.F32()
			require.NoError(t, err)
			d, at := maxAbsDiff(got, want)
			assert.LessOrEqualf(t, d, 1e-5*maxAbs(want), "dL/dX: max diff %g at %d", d, at)
		})
	}
}

// TestDequantTranspose checks the fused transposed copy of a quantized matrix against
// the values ggml dequantizes to, transposed (F32, exactly) and against the generic ops' copy
// (same bits, in each result type), on 1 to 3 threads.
func TestDequantTranspose(t *testing.T) {
	for _, typ := range []Type{TypeQ4_0, TypeQ5_0, TypeQ8_0, TypeQ4_K, TypeQ6_K, TypeIQ4_NL} {
		for _, sh := range [][2]int{{256, 40}, {576, 77}, {96, 33}} {
			in, out := sh[0], sh[1]
			if in%typ.BlockSize() != 0 {
				continue
			}
			r := rand.New(rand.NewPCG(uint64(typ), uint64(in)))
			wq, err := Quantize(typ, randn(r, in*out, 0.5), in)
			require.NoError(t, err)
			ref, err := Dequantize(typ, wq, in*out) // ggml's own decoding; the transposition is under test
			require.NoError(t, err)
			for _, rt := range []Type{TypeF32, TypeF16, TypeBF16} {
				t.Run(fmt.Sprintf("%s/%dx%d/%s", typ, in, out, rt), func(t *testing.T) {
					var got [3][]byte
					for threads := 1; threads <= 3; threads++ {
						cpu, err := NewCPUBackend(threads)
						require.NoError(t, err)
						defer cpu.Close()
						e := newEnv(t, cpu)
						W := e.leafBytes(typ, wq, in, out)
						outs := e.runAllBytes(func(c *Context) []*Tensor {
							generic, ok := transposedCopy(c, W, rt, map[int]*Tensor{}, false)
							require.True(t, ok)
							return []*Tensor{c.DequantTranspose(W, rt), c.Cont(generic)}
						})
						require.Equal(t, outs[1], outs[0], "the generic ops' bits")
						got[threads-1] = outs[0]
					}
					assert.Equal(t, got[0], got[1], "2 threads")
					assert.Equal(t, got[0], got[2], "3 threads")
					if rt == TypeF32 {
						v, err := Dequantize(TypeF32, got[0], in*out)
						require.NoError(t, err)
						for c := 0; c < in; c++ {
							for o := 0; o < out; o++ {
								require.Equal(t, ref[o*in+c], v[c*out+o], "[%d][%d]", c, o)
							}
						}
					}
				})
			}
		}
	}
}

// BenchmarkDequantTranspose times the fused transposed copy of a Q4_K matrix the shape
// of a 3B model's feed-forward weights (3,072 × 8,192) to BF16 and F32, on two threads,
// with the product that reads it (a backward input gradient of 256 tokens) for scale.
func BenchmarkDequantTranspose(b *testing.B) {
	const in, out, tokens = 3072, 8192, 256
	cpu, err := NewCPUBackend(2)
	require.NoError(b, err)
	defer cpu.Close()
	r := rand.New(rand.NewPCG(1, 2))
	wq, err := Quantize(TypeQ4_K, randn(r, in*out, 0.5), in)
	require.NoError(b, err)
	for _, rt := range []Type{TypeBF16, TypeF32} {
		for _, product := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/product=%v", rt, product), func(b *testing.B) {
				e := newEnv(b, cpu)
				W := e.leafBytes(TypeQ4_K, wq, in, out)
				G := e.leaf(TypeF32, randn(r, out*tokens, 1), out, tokens)
				e.alloc()
				var g *Graph
				require.NoError(b, Build(func() {
					t := e.c.DequantTranspose(W, rt)
					if product {
						t = e.c.MulMat(t, G)
					}
					g = e.c.NewGraph(64, false)
					g.Expand(t)
				}))
				s := e.scheduler()
				require.NoError(b, s.Alloc(g))
				b.ResetTimer()
				for range b.N {
					require.NoError(b, s.Run(g))
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(in*out), "ns/value")
			})
		}
	}
}
