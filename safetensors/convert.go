package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
)

// ToFloat32 converts little-endian elements of dtype d to float32: F32 as is,
// F16 and BF16 exactly, F64 rounded to nearest.
func ToFloat32(d DType, b []byte) ([]float32, error) {
	size := d.Size()
	if size == 0 || int64(len(b))%size != 0 {
		return nil, fmt.Errorf("%d bytes are not whole %s elements", len(b), d)
	}
	n := int64(len(b)) / size
	out := make([]float32, n)
	switch d {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case BF16:
		for i := range out {
			// bfloat16 is the high half of a float32.
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	default:
		return nil, fmt.Errorf("dtype %s is not a float type this reader converts (F32, F16, BF16, F64)", d)
	}
	return out, nil
}

// Float32Bytes encodes x as little-endian F32 bytes.
func Float32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// HalfToFloat32 converts an IEEE 754 binary16 value to float32 exactly.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN: keep the payload
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp != 0: // normal: rebias 15 -> 127
		return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
	case frac == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal half: frac·2^-24, exactly representable as a normal float32.
	v := float32(frac) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}
