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

// TestRepackedQ4K puts a Q4_K weight in the CPU backend's repacking buffer, where
// llama.cpp interleaves it for its faster products, and checks that DequantTranspose
// reads it to the same bits as the plain layout, that products with it match those with
// the plain weight, and that its bytes are written whole and never read back.
func TestRepackedQ4K(t *testing.T) {
	if !CanRepack(TypeQ4_K, 8) {
		t.Skip("this CPU backend repacks no Q4_K weight (x86 with AVX2 only)")
	}
	const in, out, T = 768, 40, 37
	r := rand.New(rand.NewPCG(5, 6))
	wq, err := Quantize(TypeQ4_K, randn(r, in*out, 0.5), in)
	require.NoError(t, err)
	x := randn(r, in*T, 1)

	cpu, err := NewCPUBackend(2)
	require.NoError(t, err)
	defer cpu.Close()
	e := newEnv(t, cpu)
	plain := e.leafBytes(TypeQ4_K, wq, in, out)
	X := e.leaf(TypeF32, x, in, T)
	rc, err := NewContext(4, 0)
	require.NoError(t, err)
	defer rc.Close()
	var packed *Tensor
	require.NoError(t, Build(func() { packed = rc.NewTensor(TypeQ4_K, in, out).SetName("packed") }))
	buf, err := rc.AllocRepacked()
	require.NoError(t, err)
	defer buf.Close()
	require.Error(t, packed.SetBytesAt(wq[:len(wq)/2], 0), "a repacked tensor is written whole")
	require.NoError(t, packed.SetBytes(wq))
	_, err = packed.Bytes()
	require.Error(t, err, "a repacked tensor's bytes are not read back")

	for _, rt := range []Type{TypeF32, TypeBF16} {
		t.Run(fmt.Sprint(rt), func(t *testing.T) {
			outs := e.runAllBytes(func(c *Context) []*Tensor {
				return []*Tensor{c.DequantTranspose(plain, rt), c.DequantTranspose(packed, rt)}
			})
			require.Equal(t, outs[0], outs[1], "the repacked weight dequantized")
		})
	}
	// Both products quantize X to Q8_K and sum the same integer products a sub-block at a
	// time; they may add the sub-blocks' scaled sums in another order, so each output
	// may differ by the rounding of a sum of in/256 · 8 terms, bounded here by 8 ulps of
	// the sum of the terms' magnitudes (which |W|·|X| bounds).
	ys := e.runAll(func(c *Context) []*Tensor {
		return []*Tensor{c.MulMat(plain, X), c.MulMat(packed, X)}
	})
	wf, err := Dequantize(TypeQ4_K, wq, in*out)
	require.NoError(t, err)
	for tok := 0; tok < T; tok++ {
		for o := 0; o < out; o++ {
			var mag float64
			for k := 0; k < in; k++ {
				mag += math.Abs(float64(wf[o*in+k]) * float64(x[tok*in+k]))
			}
			i := tok*out + o
			assert.LessOrEqualf(t, math.Abs(float64(ys[0][i])-float64(ys[1][i])), 8*mag*math.Pow(2, -24)*float64(in/256*8),
				"token %d, output %d: %g plain, %g repacked", tok, o, ys[0][i], ys[1][i])
		}
	}
}
