package gguf

import (
	"fmt"
	"math/bits"
	"strings"
)

// Type is a ggml tensor element type (enum ggml_type), as stored in a tensor info.
type Type uint32

// Tensor types with the ids of enum ggml_type in ggml/include/ggml.h. Ids 4, 5,
// 31-33 and 36-38 were removed from ggml and are not valid in GGUF files.
const (
	TypeF32     Type = 0
	TypeF16     Type = 1
	TypeQ4_0    Type = 2
	TypeQ4_1    Type = 3
	TypeQ5_0    Type = 6
	TypeQ5_1    Type = 7
	TypeQ8_0    Type = 8
	TypeQ8_1    Type = 9
	TypeQ2_K    Type = 10
	TypeQ3_K    Type = 11
	TypeQ4_K    Type = 12
	TypeQ5_K    Type = 13
	TypeQ6_K    Type = 14
	TypeQ8_K    Type = 15
	TypeIQ2_XXS Type = 16
	TypeIQ2_XS  Type = 17
	TypeIQ3_XXS Type = 18
	TypeIQ1_S   Type = 19
	TypeIQ4_NL  Type = 20
	TypeIQ3_S   Type = 21
	TypeIQ2_S   Type = 22
	TypeIQ4_XS  Type = 23
	TypeI8      Type = 24
	TypeI16     Type = 25
	TypeI32     Type = 26
	TypeI64     Type = 27
	TypeF64     Type = 28
	TypeIQ1_M   Type = 29
	TypeBF16    Type = 30
	TypeTQ1_0   Type = 34
	TypeTQ2_0   Type = 35
	TypeMXFP4   Type = 39
	TypeNVFP4   Type = 40
	TypeQ1_0    Type = 41
	TypeQ2_0    Type = 42

	// TypeCount is GGML_TYPE_COUNT of the pinned ggml: every valid id is below it.
	TypeCount Type = 43
)

// qkK is QK_K in ggml-common.h, the super-block size of the k-quants and i-quants.
const qkK = 256

// Info describes one ggml type: ggml's name for it, the number of elements per
// block and the bytes per block (type_traits blck_size and type_size in ggml.c).
type Info struct {
	Type      Type
	Name      string
	BlockSize int64
	TypeSize  int64
	Quantized bool
}

// TypeInfo returns the table entry for t, and false for ids ggml does not define
// (including the removed ones).
//
// The sizes are sizeof(block_*) from ggml/src/ggml-common.h at the pinned commit;
// the ggml package checks every entry against the C library in its tests.
func TypeInfo(t Type) (Info, bool) {
	// A switch over constants rather than a package-level table keeps the table
	// immutable: nobody can patch an entry at run time.
	var n string
	var blck, size int64
	q := true
	switch t {
	case TypeF32:
		n, blck, size, q = "f32", 1, 4, false
	case TypeF16:
		n, blck, size, q = "f16", 1, 2, false
	case TypeQ4_0:
		n, blck, size = "q4_0", 32, 18
	case TypeQ4_1:
		n, blck, size = "q4_1", 32, 20
	case TypeQ5_0:
		n, blck, size = "q5_0", 32, 22
	case TypeQ5_1:
		n, blck, size = "q5_1", 32, 24
	case TypeQ8_0:
		n, blck, size = "q8_0", 32, 34
	case TypeQ8_1:
		n, blck, size = "q8_1", 32, 36
	case TypeQ2_K:
		n, blck, size = "q2_K", qkK, 84
	case TypeQ3_K:
		n, blck, size = "q3_K", qkK, 110
	case TypeQ4_K:
		n, blck, size = "q4_K", qkK, 144
	case TypeQ5_K:
		n, blck, size = "q5_K", qkK, 176
	case TypeQ6_K:
		n, blck, size = "q6_K", qkK, 210
	case TypeQ8_K:
		n, blck, size = "q8_K", qkK, 292
	case TypeIQ2_XXS:
		n, blck, size = "iq2_xxs", qkK, 66
	case TypeIQ2_XS:
		n, blck, size = "iq2_xs", qkK, 74
	case TypeIQ3_XXS:
		n, blck, size = "iq3_xxs", qkK, 98
	case TypeIQ1_S:
		n, blck, size = "iq1_s", qkK, 50
	case TypeIQ4_NL:
		n, blck, size = "iq4_nl", 32, 18
	case TypeIQ3_S:
		n, blck, size = "iq3_s", qkK, 110
	case TypeIQ2_S:
		n, blck, size = "iq2_s", qkK, 82
	case TypeIQ4_XS:
		n, blck, size = "iq4_xs", qkK, 136
	case TypeI8:
		n, blck, size, q = "i8", 1, 1, false
	case TypeI16:
		n, blck, size, q = "i16", 1, 2, false
	case TypeI32:
		n, blck, size, q = "i32", 1, 4, false
	case TypeI64:
		n, blck, size, q = "i64", 1, 8, false
	case TypeF64:
		n, blck, size, q = "f64", 1, 8, false
	case TypeIQ1_M:
		n, blck, size = "iq1_m", qkK, 56
	case TypeBF16:
		n, blck, size, q = "bf16", 1, 2, false
	case TypeTQ1_0:
		n, blck, size = "tq1_0", qkK, 54
	case TypeTQ2_0:
		n, blck, size = "tq2_0", qkK, 66
	case TypeMXFP4:
		n, blck, size = "mxfp4", 32, 17
	case TypeNVFP4:
		n, blck, size = "nvfp4", 64, 36
	case TypeQ1_0:
		n, blck, size = "q1_0", 128, 18
	case TypeQ2_0:
		n, blck, size = "q2_0", 64, 18
	default:
		return Info{}, false
	}
	return Info{Type: t, Name: n, BlockSize: blck, TypeSize: size, Quantized: q}, true
}

// Types lists every known type in id order.
func Types() []Info {
	var out []Info
	for t := Type(0); t < TypeCount; t++ {
		if info, ok := TypeInfo(t); ok {
			out = append(out, info)
		}
	}
	return out
}

// Known reports whether t is a type ggml defines.
func (t Type) Known() bool {
	_, ok := TypeInfo(t)
	return ok
}

// BlockSize returns the number of elements per block of t, or 0 if t is unknown.
func (t Type) BlockSize() int64 {
	info, _ := TypeInfo(t)
	return info.BlockSize
}

// TypeSize returns the bytes per block of t, or 0 if t is unknown.
func (t Type) TypeSize() int64 {
	info, _ := TypeInfo(t)
	return info.TypeSize
}

// IsQuantized reports whether t stores elements in quantized blocks.
func (t Type) IsQuantized() bool {
	info, _ := TypeInfo(t)
	return info.Quantized
}

// String returns ggml's name for t ("f16", "q4_K"), or "type(N)" if t is unknown.
func (t Type) String() string {
	if info, ok := TypeInfo(t); ok {
		return info.Name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// ParseType returns the type whose ggml name is s, ignoring case ("Q4_K" and "q4_k" both work).
func ParseType(s string) (Type, error) {
	for _, info := range Types() {
		if strings.EqualFold(info.Name, s) {
			return info.Type, nil
		}
	}
	return 0, fmt.Errorf("gguf: unknown tensor type %q", s)
}

// RowSize returns the bytes taken by n consecutive elements of type t (ggml_row_size).
// It fails if t is unknown, n is negative or not a multiple of the block size, or
// the size overflows int64.
func RowSize(t Type, n int64) (int64, error) {
	info, ok := TypeInfo(t)
	if !ok {
		return 0, fmt.Errorf("gguf: unknown tensor type %d", uint32(t))
	}
	if n < 0 {
		return 0, fmt.Errorf("gguf: negative element count %d", n)
	}
	if n%info.BlockSize != 0 {
		return 0, fmt.Errorf("gguf: %d elements of %s: not a multiple of the block size %d", n, info.Name, info.BlockSize)
	}
	size, ok := mulInt64(n/info.BlockSize, info.TypeSize)
	if !ok {
		return 0, fmt.Errorf("gguf: %d elements of %s: size overflows int64", n, info.Name)
	}
	return size, nil
}

// mulInt64 multiplies two non-negative int64 values, reporting false on overflow.
func mulInt64(a, b int64) (int64, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > 1<<63-1 {
		return 0, false
	}
	return int64(lo), true
}
