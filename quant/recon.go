package quant

import (
	"fmt"
	"math"

	"github.com/ecotune/ecotune/ggml"
)

// ReconError summarizes how far a reconstruction is from the original values.
type ReconError struct {
	RelRMS float64 // sqrt(Σ(x-y)² / Σx²): the error's RMS relative to the signal's
	MaxAbs float64 // max |x-y|
	N      int     // number of values compared
	sumSq  float64 // Σ(x-y)², kept so errors of several tensors can be merged
	sumX2  float64 // Σx²
}

// MeasureError compares a reconstruction y with the original x; they must have
// the same length.
func MeasureError(x, y []float32) (ReconError, error) {
	if len(x) != len(y) {
		return ReconError{}, fmt.Errorf("quant: comparing %d values with %d", len(x), len(y))
	}
	var e ReconError
	for i := range x {
		d := float64(x[i]) - float64(y[i])
		e.sumSq += d * d
		e.sumX2 += float64(x[i]) * float64(x[i])
		e.MaxAbs = max(e.MaxAbs, math.Abs(d))
	}
	e.N = len(x)
	e.finish()
	return e, nil
}

// Merge returns the error over the values of both e and o together.
func (e ReconError) Merge(o ReconError) ReconError {
	m := ReconError{N: e.N + o.N, MaxAbs: max(e.MaxAbs, o.MaxAbs), sumSq: e.sumSq + o.sumSq, sumX2: e.sumX2 + o.sumX2}
	m.finish()
	return m
}

func (e *ReconError) finish() {
	e.RelRMS = 0
	if e.sumX2 > 0 {
		e.RelRMS = math.Sqrt(e.sumSq / e.sumX2)
	}
}

// Codec is one way of storing weights, for comparing reconstruction errors:
// ecotune's NF4 codec or a ggml type.
type Codec struct {
	Name string
	// Bits is the storage cost per value of full blocks.
	Bits float64
	// RoundTrip encodes and decodes rows of rowLen values.
	RoundTrip func(x []float32, rowLen int) ([]float32, error)
}

// Codecs lists the codecs of the reconstruction-error study in
// docs/quantization.md: NF4 (this package's codec), then the ggml types of
// RowTypes from coarsest to finest.
func Codecs() []Codec {
	cs := []Codec{{
		Name: "NF4 (Go, block 64, f32 absmax)",
		Bits: 4 + 32.0/NF4BlockSize,
		RoundTrip: func(x []float32, _ int) ([]float32, error) {
			return QuantizeNF4(x).Dequantize()
		},
	}}
	for _, t := range []ggml.Type{ggml.TypeIQ4_NL, ggml.TypeQ4_0, ggml.TypeQ4_K, ggml.TypeQ8_0, ggml.TypeBF16, ggml.TypeF16} {
		cs = append(cs, Codec{
			Name: t.String(),
			Bits: 8 * float64(t.TypeSize()) / float64(t.BlockSize()),
			RoundTrip: func(x []float32, rowLen int) ([]float32, error) {
				return RoundTrip(t, x, rowLen)
			},
		})
	}
	return cs
}
