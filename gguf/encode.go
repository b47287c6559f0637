package gguf

import (
	"encoding/binary"
	"math"
)

// encoder appends little-endian GGUF primitives to a byte slice. Values are
// checked before encoding, so it cannot fail.
type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) { e.b = binary.LittleEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) boolean(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

// value appends v without its type tag; v must have passed Value.check.
func (e *encoder) value(v Value) {
	switch x := v.x.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		e.boolean(x)
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	default:
		e.array(v)
	}
}

// array appends an array's element type, length and elements.
func (e *encoder) array(v Value) {
	e.u32(uint32(v.elem))
	e.u64(uint64(v.Len()))
	switch x := v.x.(type) {
	case []uint8:
		e.b = append(e.b, x...)
	case []int8:
		encodeAll(e, x, func(v int8) { e.u8(uint8(v)) })
	case []uint16:
		encodeAll(e, x, e.u16)
	case []int16:
		encodeAll(e, x, func(v int16) { e.u16(uint16(v)) })
	case []uint32:
		encodeAll(e, x, e.u32)
	case []int32:
		encodeAll(e, x, func(v int32) { e.u32(uint32(v)) })
	case []float32:
		encodeAll(e, x, func(v float32) { e.u32(math.Float32bits(v)) })
	case []bool:
		encodeAll(e, x, e.boolean)
	case []string:
		encodeAll(e, x, e.str)
	case []uint64:
		encodeAll(e, x, e.u64)
	case []int64:
		encodeAll(e, x, func(v int64) { e.u64(uint64(v)) })
	case []float64:
		encodeAll(e, x, func(v float64) { e.u64(math.Float64bits(v)) })
	case []Value:
		encodeAll(e, x, e.array)
	}
}

func encodeAll[T any](_ *encoder, xs []T, put func(T)) {
	for _, x := range xs {
		put(x)
	}
}

// header appends the complete header: magic, version, counts, metadata and
// tensor infos with the given data offsets.
func (e *encoder) header(version uint32, meta *Metadata, tensors []TensorInfo, offsets []int64) {
	e.b = append(e.b, Magic...)
	e.u32(version)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(meta.Len()))
	for _, kv := range meta.kvs {
		e.str(kv.Key)
		e.u32(uint32(kv.Value.typ))
		e.value(kv.Value)
	}
	for i, t := range tensors {
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(uint64(d))
		}
		e.u32(uint32(t.Type))
		e.u64(uint64(offsets[i]))
	}
}
