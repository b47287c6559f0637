//go:build cgo

package ggml

/*
#include <stdlib.h>
#include "ggml.h"
*/
import "C"

import "fmt"

// Type is a ggml tensor element type (enum ggml_type).
type Type int32

// The types ecotune names directly; Types lists every type this ggml knows.
const (
	TypeF32    Type = C.GGML_TYPE_F32
	TypeF16    Type = C.GGML_TYPE_F16
	TypeQ4_0   Type = C.GGML_TYPE_Q4_0
	TypeQ4_1   Type = C.GGML_TYPE_Q4_1
	TypeQ5_0   Type = C.GGML_TYPE_Q5_0
	TypeQ5_1   Type = C.GGML_TYPE_Q5_1
	TypeQ8_0   Type = C.GGML_TYPE_Q8_0
	TypeQ2_K   Type = C.GGML_TYPE_Q2_K
	TypeQ3_K   Type = C.GGML_TYPE_Q3_K
	TypeQ4_K   Type = C.GGML_TYPE_Q4_K
	TypeQ5_K   Type = C.GGML_TYPE_Q5_K
	TypeQ6_K   Type = C.GGML_TYPE_Q6_K
	TypeIQ4_NL Type = C.GGML_TYPE_IQ4_NL
	TypeIQ4_XS Type = C.GGML_TYPE_IQ4_XS
	TypeI8     Type = C.GGML_TYPE_I8
	TypeI16    Type = C.GGML_TYPE_I16
	TypeI32    Type = C.GGML_TYPE_I32
	TypeI64    Type = C.GGML_TYPE_I64
	TypeF64    Type = C.GGML_TYPE_F64
	TypeBF16   Type = C.GGML_TYPE_BF16
	TypeMXFP4  Type = C.GGML_TYPE_MXFP4
)

// TypeCount is one past the largest type id this ggml defines.
const TypeCount = int(C.GGML_TYPE_COUNT)

func (t Type) valid() bool {
	return t >= 0 && int(t) < TypeCount && C.ggml_blck_size(C.enum_ggml_type(t)) > 0
}

// Valid reports whether t is a type this ggml build implements (removed ids are not).
func (t Type) Valid() bool { return t.valid() }

// String returns ggml's name for t ("f32", "q4_K", ...).
func (t Type) String() string {
	if !t.valid() {
		return fmt.Sprintf("type(%d)", int32(t))
	}
	return C.GoString(C.ggml_type_name(C.enum_ggml_type(t)))
}

// BlockSize is the number of elements in one block of t (1 for plain types).
func (t Type) BlockSize() int {
	if !t.valid() {
		return 0
	}
	return int(C.ggml_blck_size(C.enum_ggml_type(t)))
}

// TypeSize is the number of bytes of one block of t.
func (t Type) TypeSize() int {
	if !t.valid() {
		return 0
	}
	return int(C.ggml_type_size(C.enum_ggml_type(t)))
}

// RowSize is the number of bytes n elements of t take; n must be a multiple of BlockSize.
func (t Type) RowSize(n int) int {
	bs := t.BlockSize()
	if bs == 0 {
		return 0
	}
	return n / bs * t.TypeSize()
}

// IsQuantized reports whether t is a block-quantized type.
func (t Type) IsQuantized() bool { return t.valid() && bool(C.ggml_is_quantized(C.enum_ggml_type(t))) }

// RowGroup is how many consecutive rows of width values of t one get_rows must read as
// a single row for every backend to run it: CUDA's kernel reads IQ4_NL and MXFP4 only in
// whole 256-value super-blocks, which a row of, say, 576 values is not. It is 1 where no
// grouping is needed.
func (t Type) RowGroup(width int) int {
	if t != TypeIQ4_NL && t != TypeMXFP4 {
		return 1
	}
	return superBlockRows(width)
}

// superBlockRows is the fewest consecutive rows of width values that together hold
// whole 256-value super-blocks: 4 for 576, 8 for 96, 1 for multiples of 256.
func superBlockRows(width int) int {
	g := 256
	for w := width; w != 0; g, w = w, g%w {
	}
	return 256 / g
}

// Types lists every type this ggml build implements, in id order.
func Types() []Type {
	var ts []Type
	for i := 0; i < TypeCount; i++ {
		if Type(i).valid() {
			ts = append(ts, Type(i))
		}
	}
	return ts
}

// ParseType returns the type named s as ggml names it (case-insensitive, "q4_k" works).
func ParseType(s string) (Type, error) {
	for _, t := range Types() {
		if equalFold(t.String(), s) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("ggml: unknown type %q", s)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
