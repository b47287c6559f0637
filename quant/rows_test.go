package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/ggml"
)

func gaussian(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 0))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func TestQuantizeMatchesOneGGMLCall(t *testing.T) {
	// Enough rows to be split across goroutines: the bytes must be those of
	// a single ggml call.
	x := gaussian(1, 1024*256)
	for _, typ := range RowTypes {
		t.Run(typ.String(), func(t *testing.T) {
			got, err := Quantize(typ, x, 1024)
			require.NoError(t, err)
			want, err := ggml.Quantize(typ, x, 1024)
			require.NoError(t, err)
			assert.Equal(t, want, got)
			assert.Len(t, got, 256*typ.RowSize(1024))
		})
	}
}

func TestRoundTripErrorBounds(t *testing.T) {
	// Relative RMS error of N(0,1) data: loose upper bounds from each format's
	// precision (3 bits of mantissa or so for 4-bit types, 7 for Q8_0 and BF16).
	bounds := map[ggml.Type]float64{
		ggml.TypeF16: 1e-3, ggml.TypeBF16: 5e-3, ggml.TypeQ8_0: 1e-2,
		ggml.TypeQ4_0: 0.15, ggml.TypeQ4_K: 0.12, ggml.TypeIQ4_NL: 0.12,
	}
	x := gaussian(2, 64*256)
	for _, typ := range RowTypes {
		y, err := RoundTrip(typ, x, 256)
		require.NoError(t, err)
		e, err := MeasureError(x, y)
		require.NoError(t, err)
		assert.Less(t, e.RelRMS, bounds[typ], typ.String())
		assert.Greater(t, e.RelRMS, 0.0, typ.String())
	}
	y, err := RoundTrip(ggml.TypeF32, x, 256)
	require.NoError(t, err)
	assert.Equal(t, x, y)
}

func TestQuantizeErrors(t *testing.T) {
	x := make([]float32, 96)
	_, err := Quantize(ggml.TypeQ4_K, x, 96)
	assert.ErrorContains(t, err, "not a multiple of the q4_K block size 256")
	_, err = Quantize(ggml.TypeQ8_0, x, 40)
	assert.ErrorContains(t, err, "whole rows")
	_, err = Quantize(ggml.TypeI32, x, 32)
	assert.Error(t, err)
	_, err = Dequantize(ggml.TypeQ8_0, make([]byte, 33), 64)
	assert.Error(t, err)
}

func TestMeasureError(t *testing.T) {
	e, err := MeasureError([]float32{3, 4}, []float32{3, 4.5})
	require.NoError(t, err)
	assert.InDelta(t, 0.5/5, e.RelRMS, 1e-12)
	assert.Equal(t, 0.5, e.MaxAbs)
	f, err := MeasureError([]float32{0}, []float32{2})
	require.NoError(t, err)
	m := e.Merge(f)
	assert.InDelta(t, math.Sqrt(4.25/25), m.RelRMS, 1e-12)
	assert.Equal(t, 2.0, m.MaxAbs)
	assert.Equal(t, 3, m.N)
	_, err = MeasureError([]float32{1}, nil)
	assert.Error(t, err)
}
