package ggml

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHalfProduct multiplies an F16 matrix by F32 rows whose sizes span 2^-30 to 2^15
// (gradients of every size), through halfProduct and through ggml's plain product, and
// compares both with float64 sums of the same F16 weights and F32 rows. The scaled rows
// are rounded to F16 once, 2⁻¹¹ relative at most, and ggml sums k products in F32, k·2⁻²⁴
// relative to the sum of their magnitudes at most; a value of a row more than 2²⁸ below
// its largest is an F16 subnormal, off by 2⁻²⁴ of the scaled unit at most. The plain
// product misses that bound on the small rows: they underflow F16.
func TestHalfProduct(t *testing.T) {
	const k, m, n, h, pad = 4096, 40, 3, 2, 32
	cpu, err := NewCPUBackend(2)
	require.NoError(t, err)
	defer cpu.Close()
	e := newEnv(t, cpu)
	r := rand.New(rand.NewPCG(7, 8))
	aq, err := Quantize(TypeF16, randn(r, k*m, 0.05), k)
	require.NoError(t, err)
	a := make([]float64, k*m)
	for i := range a {
		a[i] = halfToFloat(binary.LittleEndian.Uint16(aq[2*i:]))
	}
	// x is [k+pad, n, h] and read through a view of its first k columns: rows that are
	// not contiguous with each other, as a transposed gradient's can be.
	rowScale := []float64{1e-9, 3e-7, 2e-5, 1, 150, 3e4}
	xs := make([]float32, (k+pad)*n*h)
	xr := make([]float64, k*n*h)
	for j := range n * h {
		for l := range k {
			v := float32(r.NormFloat64() * rowScale[j])
			xs[j*(k+pad)+l], xr[j*k+l] = v, float64(v)
		}
	}
	A := e.leafBytes(TypeF16, aq, k, m)
	X := e.leaf(TypeF32, xs, k+pad, n, h)
	outs := e.runAll(func(c *Context) []*Tensor {
		x := c.View(X, []int{k, n, h}, []int{(k + pad) * 4, (k + pad) * n * 4}, 0)
		return []*Tensor{c.halfProduct(A, x), c.MulMat(A, x)}
	})
	ref := matmulRef(a, xr, k, m, n*h)
	var worst float64
	plainMissed := 0
	for j := range n * h {
		var top float64
		for l := range k {
			top = math.Max(top, math.Abs(xr[j*k+l]))
		}
		for i := range m {
			var mag, absA float64
			for l := range k {
				mag += math.Abs(a[i*k+l] * xr[j*k+l])
				absA += math.Abs(a[i*k+l])
			}
			bound := (math.Exp2(-11)+k*math.Exp2(-24))*mag + absA*top*math.Exp2(-38)
			want := ref[j*m+i]
			d := math.Abs(float64(outs[0][j*m+i]) - want)
			require.LessOrEqual(t, d, bound, "row %d (size %g) column %d", j, rowScale[j], i)
			worst = math.Max(worst, d/mag)
			if rowScale[j] < 1e-6 && math.Abs(float64(outs[1][j*m+i])-want) > bound {
				plainMissed++
			}
		}
	}
	// At 1e-9 every value rounds to an F16 zero, at 3e-7 to a few subnormal steps.
	assert.GreaterOrEqual(t, plainMissed, m, "the plain F16 product's misses on the two rows below 2^-21")
	t.Logf("worst error relative to the sum of magnitudes: %.2e (2^-11 = %.2e)", worst, math.Exp2(-11))
}
