//go:build cgo

package ggml

/*
#include "ggml.h"

// ggml hands out converters as function pointers, which Go cannot call directly.
static void ecotune_to_float(enum ggml_type t, const void * x, float * y, int64_t n) {
	ggml_get_type_traits(t)->to_float(x, y, n);
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// CanQuantize reports whether Quantize supports t without an importance matrix.
func CanQuantize(t Type) bool {
	if !t.valid() {
		return false
	}
	switch t {
	case TypeI8, TypeI16, TypeI32, TypeI64, TypeF64:
		return false
	}
	if C.ggml_quantize_requires_imatrix(C.enum_ggml_type(t)) {
		return false
	}
	tr := C.ggml_get_type_traits(C.enum_ggml_type(t))
	return t == TypeF32 || tr.from_float_ref != nil
}

// Quantize converts rows of rowLen float32 values into t's layout with ggml's own
// quantizers (the reference ones llama-quantize uses, without an importance matrix).
func Quantize(t Type, src []float32, rowLen int) ([]byte, error) {
	if !CanQuantize(t) {
		return nil, fmt.Errorf("ggml: cannot quantize to %s", t)
	}
	if rowLen <= 0 || len(src)%rowLen != 0 {
		return nil, fmt.Errorf("ggml: quantize to %s: %d values are not whole rows of %d", t, len(src), rowLen)
	}
	if rowLen%t.BlockSize() != 0 {
		return nil, fmt.Errorf("ggml: quantize to %s: row length %d is not a multiple of the block size %d", t, rowLen, t.BlockSize())
	}
	nrows := len(src) / rowLen
	dst := make([]byte, nrows*t.RowSize(rowLen))
	if len(src) == 0 {
		return dst, nil
	}
	n := C.ggml_quantize_chunk(C.enum_ggml_type(t), (*C.float)(unsafe.Pointer(&src[0])), unsafe.Pointer(&dst[0]),
		0, C.int64_t(nrows), C.int64_t(rowLen), nil)
	if int(n) != len(dst) {
		return nil, fmt.Errorf("ggml: quantize to %s wrote %d bytes, expected %d", t, n, len(dst))
	}
	return dst, nil
}

// Dequantize converts n elements of type t stored in data to float32.
func Dequantize(t Type, data []byte, n int) ([]float32, error) {
	if !t.valid() {
		return nil, fmt.Errorf("ggml: dequantize: invalid type %d", int32(t))
	}
	if n < 0 || n%t.BlockSize() != 0 || len(data) != n/t.BlockSize()*t.TypeSize() {
		return nil, fmt.Errorf("ggml: dequantize %s: %d bytes do not hold %d elements", t, len(data), n)
	}
	out := make([]float32, n)
	if n == 0 {
		return out, nil
	}
	if t == TypeF32 {
		copy(out, unsafe.Slice((*float32)(unsafe.Pointer(&data[0])), n))
		return out, nil
	}
	tr := C.ggml_get_type_traits(C.enum_ggml_type(t))
	if tr.to_float == nil {
		return nil, fmt.Errorf("ggml: %s has no conversion to f32", t)
	}
	C.ecotune_to_float(C.enum_ggml_type(t), unsafe.Pointer(&data[0]), (*C.float)(unsafe.Pointer(&out[0])), C.int64_t(n))
	return out, nil
}
