package convert

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/quant"
)

// TestFloatEncodersMatchGGML: the pure-Go F16 and BF16 encoders give ggml's
// own conversions bit for bit, on random values of every magnitude and on the
// edges (ties, subnormals, overflow, infinities, signed zeros).
func TestFloatEncodersMatchGGML(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var x []float32
	for range 200000 {
		x = append(x, math.Float32frombits(r.Uint32()&^(0xff<<23)|uint32(100+r.IntN(60))<<23))
	}
	for range 20000 {
		x = append(x, math.Float32frombits(r.Uint32())) // any bit pattern but NaN below
	}
	x = append(x, 0, float32(math.Copysign(0, -1)), 65504, 65519, 65520, 1e-8, 5.96e-8, 2.98e-8, 6.1e-5,
		float32(math.Inf(1)), float32(math.Inf(-1)), 1+1.0/2048, 1+3.0/2048, 1+1.0/256, 1+3.0/256)
	for i := range x {
		if math.IsNaN(float64(x[i])) {
			x[i] = 1
		}
	}
	for _, tc := range []struct {
		typ ggml.Type
		enc func(float32) uint16
	}{{ggml.TypeF16, halfFromFloat32}, {ggml.TypeBF16, bf16FromFloat32}} {
		want, err := quant.Quantize(tc.typ, x, len(x))
		require.NoError(t, err)
		for i, v := range x {
			w := binary.LittleEndian.Uint16(want[2*i:])
			if got := tc.enc(v); got != w {
				t.Fatalf("%s(%g = %#08x) = %#04x, ggml gives %#04x", tc.typ, v, math.Float32bits(v), got, w)
			}
		}
	}
}
