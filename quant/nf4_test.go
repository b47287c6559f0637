package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNF4ThresholdsAreMidpoints(t *testing.T) {
	for i, th := range nf4Thresholds {
		mid := float32((float64(NF4Codebook[i]) + float64(NF4Codebook[i+1])) / 2)
		assert.Greater(t, th, NF4Codebook[i])
		assert.Less(t, th, NF4Codebook[i+1])
		// Within one float32 ulp of the rounded exact midpoint.
		assert.True(t, th == mid || math.Nextafter32(th, 2) == mid || math.Nextafter32(th, -2) == mid, "threshold %d: %g vs midpoint %g", i, th, mid)
	}
}

func TestNF4CodebookRoundTripIsExact(t *testing.T) {
	// The codebook itself, scaled by powers of two (exact in float32), in
	// blocks whose absmax is the scale.
	for _, scale := range []float32{1, 0.5, 0.03125, 8, 1024} {
		x := make([]float32, 0, NF4BlockSize)
		for len(x) < NF4BlockSize {
			for _, v := range NF4Codebook {
				x = append(x, v*scale)
			}
		}
		q := QuantizeNF4(x)
		assert.Equal(t, []float32{scale}, q.Scales)
		for i := range x {
			assert.EqualValues(t, i%16, codeAt(q, i), "value %d", i)
		}
		y, err := q.Dequantize()
		require.NoError(t, err)
		assert.Equal(t, x, y, "scale %g", scale)
	}
}

func codeAt(q *NF4, i int) uint8 {
	c := q.Codes[i/2]
	if i%2 == 0 {
		return c >> 4
	}
	return c & 0x0f
}

func TestNF4KnownVector(t *testing.T) {
	// absmax 2: values divided by 2 are 0.25, -0.5, 0.05, -1, 0.5, 0.1 and 0.
	x := []float32{0.5, -1, 0.1, -2, 1, 0.2, 0}
	q := QuantizeNF4(x)
	// 0.25 -> 0.2461 (10), -0.5 -> -0.5251 (2), 0.05 -> 0.0796 (8), -1 -> -1 (0),
	// 0.5 -> 0.4407 (12: below the 0.5017 midpoint), 0.1 -> 0.0796 (8), 0 -> 0 (7).
	assert.Equal(t, []float32{2}, q.Scales)
	assert.Equal(t, []byte{0xA2, 0x80, 0xC8, 0x70}, q.Codes)
	y, err := q.Dequantize()
	require.NoError(t, err)
	want := []float32{2 * NF4Codebook[10], 2 * NF4Codebook[2], 2 * NF4Codebook[8], -2, 2 * NF4Codebook[12], 2 * NF4Codebook[8], 0}
	assert.Equal(t, want, y)
	assert.Equal(t, 4+4, q.Bytes())
}

func TestNF4Rounding(t *testing.T) {
	for i, th := range nf4Thresholds {
		// Exactly on a midpoint goes down (bitsandbytes compares with >).
		assert.EqualValues(t, i, NF4Code(th), "threshold %d", i)
		assert.EqualValues(t, i+1, NF4Code(math.Nextafter32(th, 2)), "above threshold %d", i)
	}
	assert.EqualValues(t, 0, NF4Code(-1))
	assert.EqualValues(t, 15, NF4Code(1))
	assert.EqualValues(t, nf4ZeroCode, NF4Code(0))
	assert.EqualValues(t, 0, NF4Code(float32(math.NaN())), "NaN: code 0, as bitsandbytes")

	// Against a brute-force nearest search on random values.
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		v := float32(r.Float64()*2 - 1)
		best := 0
		for j, c := range NF4Codebook {
			if math.Abs(float64(v-c)) < math.Abs(float64(v-NF4Codebook[best])) {
				best = j
			}
		}
		require.EqualValues(t, best, NF4Code(v), "value %g", v)
	}
}

func TestNF4BlockAbsmax(t *testing.T) {
	// Two blocks with different magnitudes; each has its own absmax, taken
	// from the largest |x| whatever its sign.
	x := make([]float32, 2*NF4BlockSize)
	for i := range NF4BlockSize {
		x[i] = float32(i) / 1000
		x[NF4BlockSize+i] = float32(i) * 10
	}
	x[5] = -7 // the first block's absmax is a negative value
	q := QuantizeNF4(x)
	require.Len(t, q.Scales, 2)
	assert.Equal(t, float32(7), q.Scales[0])
	assert.Equal(t, float32(630), q.Scales[1])
	assert.EqualValues(t, 0, codeAt(q, 5), "the absmax value maps to -1")
	assert.EqualValues(t, 15, codeAt(q, 2*NF4BlockSize-1), "the largest positive value maps to 1")
	y, err := q.Dequantize()
	require.NoError(t, err)
	assert.Equal(t, float32(-7), y[5])
	assert.Equal(t, float32(630), y[2*NF4BlockSize-1])
	// Every value is within half the widest codebook gap of its block's scale.
	for i := range x {
		s := q.Scales[i/NF4BlockSize]
		assert.LessOrEqual(t, math.Abs(float64(x[i]-y[i])), float64(s)*(1-0.7229568362236023)/2+1e-6, "value %d", i)
	}
}

func TestNF4ZeroBlock(t *testing.T) {
	x := make([]float32, NF4BlockSize+3)
	x[NF4BlockSize+1] = 0.5
	q := QuantizeNF4(x)
	assert.Equal(t, []float32{0, 0.5}, q.Scales)
	for i := range NF4BlockSize {
		assert.EqualValues(t, nf4ZeroCode, codeAt(q, i))
	}
	y, err := q.Dequantize()
	require.NoError(t, err)
	assert.Equal(t, []float32{0, 0.5, 0}, y[NF4BlockSize:])
	for _, v := range y[:NF4BlockSize] {
		assert.Zero(t, v)
		assert.False(t, math.Signbit(float64(v)), "no negative zeros")
	}
}

func TestNF4OddTail(t *testing.T) {
	// 64 + 5 values: a short last block with its own absmax, and an odd count
	// whose last byte uses only its high nibble.
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, NF4BlockSize+5)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	q := QuantizeNF4(x)
	require.Len(t, q.Scales, 2)
	require.Len(t, q.Codes, (len(x)+1)/2)
	var tailMax float32
	for _, v := range x[NF4BlockSize:] {
		tailMax = max(tailMax, float32(math.Abs(float64(v))))
	}
	assert.Equal(t, tailMax, q.Scales[1], "the tail block's absmax is its own")
	assert.Zero(t, q.Codes[len(q.Codes)-1]&0x0f, "unused low nibble")
	y, err := q.Dequantize()
	require.NoError(t, err)
	require.Len(t, y, len(x))
	// The tail's error is bounded like any block's.
	for i := NF4BlockSize; i < len(x); i++ {
		assert.LessOrEqual(t, math.Abs(float64(x[i]-y[i])), float64(tailMax)*(1-0.7229568362236023)/2+1e-6)
	}

	// Inconsistent lengths are errors, not panics.
	for name, bad := range map[string]*NF4{
		"missing scale":   {N: q.N, Scales: q.Scales[:1], Codes: q.Codes},
		"extra scale":     {N: q.N, Scales: append(q.Scales, 1), Codes: q.Codes},
		"short codes":     {N: q.N, Scales: q.Scales, Codes: q.Codes[:len(q.Codes)-1]},
		"long codes":      {N: q.N, Scales: q.Scales, Codes: append(q.Codes, 0)},
		"negative length": {N: -1},
	} {
		_, err := bad.Dequantize()
		assert.Error(t, err, name)
	}

	empty := QuantizeNF4(nil)
	y, err = empty.Dequantize()
	require.NoError(t, err)
	assert.Empty(t, y)
}
