package convert

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/safetensors"
)

// halfFromFloat32 rounds f to the nearest IEEE binary16 value, ties to even,
// as ggml's FP32→FP16 conversion (and F16C's default rounding) does.
func halfFromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN; a NaN keeps a set high mantissa bit
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp-127 > 15: // overflow
		return sign | 0x7c00
	case exp-127 >= -14: // normal
		h := uint32(exp-127+15)<<10 | man>>13
		rest := man & 0x1fff
		if rest > 0x1000 || (rest == 0x1000 && h&1 == 1) {
			h++ // may carry into the exponent, which is the right result
		}
		return sign | uint16(h)
	case exp-127 < -25: // below half the smallest subnormal
		return sign
	}
	// Subnormal: shift the full mantissa (with its implicit 1) into place.
	m := man | 0x800000
	shift := uint32(-14-(exp-127)) + 13
	h := m >> shift
	rest := m & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rest > half || (rest == half && h&1 == 1) {
		h++
	}
	return sign | uint16(h)
}

// bf16FromFloat32 rounds f to bfloat16, ties to even, NaN kept quiet, as
// ggml's ggml_compute_fp32_to_bf16 does.
func bf16FromFloat32(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 64
	}
	return uint16((u + (0x7fff + (u>>16)&1)) >> 16)
}

// encodeRow writes x as little-endian values of type t (F32, F16 or BF16) into dst.
func encodeRow(t gguf.Type, x []float32, dst []byte) error {
	switch t {
	case gguf.TypeF32:
		for i, v := range x {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case gguf.TypeF16:
		for i, v := range x {
			binary.LittleEndian.PutUint16(dst[2*i:], halfFromFloat32(v))
		}
	case gguf.TypeBF16:
		for i, v := range x {
			binary.LittleEndian.PutUint16(dst[2*i:], bf16FromFloat32(v))
		}
	default:
		return fmt.Errorf("type %s is not a float type this converter writes (F32, F16, BF16)", t)
	}
	return nil
}

// sameLayout reports whether safetensors dtype d stores values exactly as
// GGUF type t does, so bytes can be copied unchanged.
func sameLayout(d safetensors.DType, t gguf.Type) bool {
	return d == safetensors.F32 && t == gguf.TypeF32 ||
		d == safetensors.F16 && t == gguf.TypeF16 ||
		d == safetensors.BF16 && t == gguf.TypeBF16
}

// ggufTypeOf is the GGUF type that holds dtype d without loss (F64 narrows to
// F32, the widest float type ggml computes with).
func ggufTypeOf(d safetensors.DType) (gguf.Type, bool) {
	switch d {
	case safetensors.F32, safetensors.F64:
		return gguf.TypeF32, true
	case safetensors.F16:
		return gguf.TypeF16, true
	case safetensors.BF16:
		return gguf.TypeBF16, true
	}
	return 0, false
}

// dtypeOf is the safetensors dtype of a float GGUF type.
func dtypeOf(t gguf.Type) (safetensors.DType, bool) {
	switch t {
	case gguf.TypeF32:
		return safetensors.F32, true
	case gguf.TypeF16:
		return safetensors.F16, true
	case gguf.TypeBF16:
		return safetensors.BF16, true
	}
	return "", false
}
