package gguf

import (
	"fmt"
	"slices"
	"strings"
)

// ValueType is the type tag of a metadata value (enum gguf_type).
type ValueType uint32

// Metadata value types with their ids in the GGUF format.
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12

	valueTypeCount = 13
)

// MaxArrayDepth is how deeply arrays may nest (an array of arrays has depth 2).
// The format sets no limit; this one keeps hostile files from exhausting the stack.
const MaxArrayDepth = 8

// String returns llama.cpp's short name for v ("u32", "str", "arr").
func (v ValueType) String() string {
	switch v {
	case ValueUint8:
		return "u8"
	case ValueInt8:
		return "i8"
	case ValueUint16:
		return "u16"
	case ValueInt16:
		return "i16"
	case ValueUint32:
		return "u32"
	case ValueInt32:
		return "i32"
	case ValueFloat32:
		return "f32"
	case ValueBool:
		return "bool"
	case ValueString:
		return "str"
	case ValueArray:
		return "arr"
	case ValueUint64:
		return "u64"
	case ValueInt64:
		return "i64"
	case ValueFloat64:
		return "f64"
	}
	return fmt.Sprintf("value_type(%d)", uint32(v))
}

// size returns the encoded size of a fixed-size value type, or 0 for strings,
// arrays and unknown types.
func (v ValueType) size() int64 {
	switch v {
	case ValueUint8, ValueInt8, ValueBool:
		return 1
	case ValueUint16, ValueInt16:
		return 2
	case ValueUint32, ValueInt32, ValueFloat32:
		return 4
	case ValueUint64, ValueInt64, ValueFloat64:
		return 8
	}
	return 0
}

// minSize returns the fewest bytes one encoded element of type v takes: what
// bounds a claimed array length by the bytes left in the file.
func (v ValueType) minSize() int64 {
	switch v {
	case ValueString:
		return 8 // length prefix
	case ValueArray:
		return 12 // element type and length
	}
	return v.size()
}

// Scalar is the set of Go types a metadata value or array element can hold.
type Scalar interface {
	uint8 | int8 | uint16 | int16 | uint32 | int32 | float32 | bool | string | uint64 | int64 | float64
}

// Value is one metadata value: a scalar, or an array of scalars or of arrays.
// The zero Value is invalid; build values with ValueOf, ArrayOf and ArrayOfArrays.
type Value struct {
	typ  ValueType
	elem ValueType // element type, for arrays
	// x holds the Go value: a Scalar for scalars, a []Scalar for arrays of
	// scalars, or a []Value for arrays of arrays.
	x any
}

// scalarType returns the ValueType that holds a Go value of type T.
func scalarType[T Scalar]() ValueType {
	var zero T
	switch any(zero).(type) {
	case uint8:
		return ValueUint8
	case int8:
		return ValueInt8
	case uint16:
		return ValueUint16
	case int16:
		return ValueInt16
	case uint32:
		return ValueUint32
	case int32:
		return ValueInt32
	case float32:
		return ValueFloat32
	case bool:
		return ValueBool
	case string:
		return ValueString
	case uint64:
		return ValueUint64
	case int64:
		return ValueInt64
	default: // float64: the constraint allows nothing else
		return ValueFloat64
	}
}

// ValueOf returns a scalar value; the Go type picks the GGUF type (uint32 gives u32).
func ValueOf[T Scalar](v T) Value {
	return Value{typ: scalarType[T](), x: v}
}

// ArrayOf returns an array of scalars; it copies vs.
func ArrayOf[T Scalar](vs []T) Value {
	return Value{typ: ValueArray, elem: scalarType[T](), x: slices.Clip(slices.Clone(vs))}
}

// ArrayOfArrays returns an array whose elements are arrays (each may have its own
// element type). It fails if an element is not a valid array or nesting exceeds MaxArrayDepth.
func ArrayOfArrays(vs []Value) (Value, error) {
	for i, v := range vs {
		if v.typ != ValueArray {
			return Value{}, fmt.Errorf("gguf: array of arrays: element %d is %s, not an array", i, v.typ)
		}
	}
	out := Value{typ: ValueArray, elem: ValueArray, x: slices.Clip(slices.Clone(vs))}
	if err := out.check(1); err != nil {
		return Value{}, fmt.Errorf("gguf: array of arrays: %w", err)
	}
	return out, nil
}

// Type returns the value's type tag.
func (v Value) Type() ValueType { return v.typ }

// ElemType returns the element type of an array (ValueArray for arrays of arrays).
func (v Value) ElemType() ValueType { return v.elem }

// Len returns the number of elements of an array, and 0 for a scalar.
func (v Value) Len() int {
	switch x := v.x.(type) {
	case []Value:
		return len(x)
	case []uint8:
		return len(x)
	case []int8:
		return len(x)
	case []uint16:
		return len(x)
	case []int16:
		return len(x)
	case []uint32:
		return len(x)
	case []int32:
		return len(x)
	case []float32:
		return len(x)
	case []bool:
		return len(x)
	case []string:
		return len(x)
	case []uint64:
		return len(x)
	case []int64:
		return len(x)
	case []float64:
		return len(x)
	}
	return 0
}

// Interface returns the Go value: a Scalar, a slice of one, or []Value for an
// array of arrays. Slices are shared with v: do not modify them.
func (v Value) Interface() any { return v.x }

// Elem returns element i of an array of arrays.
func (v Value) Elem(i int) (Value, bool) {
	vs, ok := v.x.([]Value)
	if !ok || i < 0 || i >= len(vs) {
		return Value{}, false
	}
	return vs[i], true
}

// As returns v's scalar as T, and false if v does not hold exactly a T.
func As[T Scalar](v Value) (T, bool) {
	x, ok := v.x.(T)
	return x, ok && v.typ != ValueArray
}

// ArrayAs returns v's elements as []T (shared with v: do not modify), and false if
// v is not an array of T.
func ArrayAs[T Scalar](v Value) ([]T, bool) {
	x, ok := v.x.([]T)
	return x, ok && v.typ == ValueArray
}

// typeName describes v's type for error messages: "u32", "arr[str]".
func (v Value) typeName() string {
	if v.typ == ValueArray {
		return "arr[" + v.elem.String() + "]"
	}
	return v.typ.String()
}

// String formats v for humans; long arrays show their first few elements.
func (v Value) String() string {
	const show = 8
	switch x := v.x.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case []string:
		return fmtArray(v.elem, x, show, func(s string) string { return fmt.Sprintf("%q", s) })
	case []Value:
		return fmtArray(v.elem, x, show, Value.String)
	}
	if v.typ != ValueArray {
		return fmt.Sprint(v.x)
	}
	s := fmt.Sprint(v.x) // "[a b c]"
	if n := v.Len(); n > show {
		fields := strings.Fields(strings.Trim(s, "[]"))
		return fmt.Sprintf("[%s ... (%d × %s)]", strings.Join(fields[:show], " "), n, v.elem)
	}
	return s
}

func fmtArray[T any](elem ValueType, xs []T, show int, f func(T) string) string {
	parts := make([]string, 0, min(len(xs), show))
	for _, x := range xs[:min(len(xs), show)] {
		parts = append(parts, f(x))
	}
	if len(xs) > show {
		return fmt.Sprintf("[%s ... (%d × %s)]", strings.Join(parts, " "), len(xs), elem)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// check reports whether v is well formed: its Go value matches its type tag and
// arrays nest at most MaxArrayDepth deep (depth is v's own depth, 1 at top level).
func (v Value) check(depth int) error {
	if v.typ != ValueArray {
		if !goTypeMatches(v.typ, v.x, false) {
			return fmt.Errorf("invalid value (type %s holds %T)", v.typ, v.x)
		}
		return nil
	}
	if depth > MaxArrayDepth {
		return fmt.Errorf("arrays nested deeper than %d", MaxArrayDepth)
	}
	if v.elem != ValueArray {
		if !goTypeMatches(v.elem, v.x, true) {
			return fmt.Errorf("invalid array (element type %s holds %T)", v.elem, v.x)
		}
		return nil
	}
	vs, ok := v.x.([]Value)
	if !ok {
		return fmt.Errorf("invalid array of arrays (holds %T)", v.x)
	}
	for i, e := range vs {
		if e.typ != ValueArray {
			return fmt.Errorf("element %d: %s in an array of arrays", i, e.typ)
		}
		if err := e.check(depth + 1); err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
	}
	return nil
}

// goTypeMatches reports whether x is the Go type (or slice type) for t.
func goTypeMatches(t ValueType, x any, slice bool) bool {
	var ok bool
	switch t {
	case ValueUint8:
		ok = isType[uint8](x, slice)
	case ValueInt8:
		ok = isType[int8](x, slice)
	case ValueUint16:
		ok = isType[uint16](x, slice)
	case ValueInt16:
		ok = isType[int16](x, slice)
	case ValueUint32:
		ok = isType[uint32](x, slice)
	case ValueInt32:
		ok = isType[int32](x, slice)
	case ValueFloat32:
		ok = isType[float32](x, slice)
	case ValueBool:
		ok = isType[bool](x, slice)
	case ValueString:
		ok = isType[string](x, slice)
	case ValueUint64:
		ok = isType[uint64](x, slice)
	case ValueInt64:
		ok = isType[int64](x, slice)
	case ValueFloat64:
		ok = isType[float64](x, slice)
	}
	return ok
}

func isType[T Scalar](x any, slice bool) bool {
	if slice {
		_, ok := x.([]T)
		return ok
	}
	_, ok := x.(T)
	return ok
}
