package onnx

import "math"

// The protobuf wire format, as much of it as ONNX's messages need: varints,
// length-delimited fields (strings, bytes, nested messages) and 32-bit floats.
// onnx.proto is proto2, so repeated integers are written unpacked, one tag per
// value, as proto2 encoders do; every decoder also accepts that form.

// Wire types of a field's tag.
const (
	wireVarint  = 0
	wireBytes   = 2
	wireFixed32 = 5
)

// appendVarint appends v in base-128, least significant group first.
func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// varintLen is the number of bytes appendVarint writes for v.
func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendTag appends a field's key: its number and wire type.
func appendTag(b []byte, field, wire int) []byte {
	return appendVarint(b, uint64(field)<<3|uint64(wire))
}

// appendInt appends an int32, int64 or enum field; negative values take ten
// bytes (two's complement as uint64), as protobuf specifies.
func appendInt(b []byte, field int, v int64) []byte {
	return appendVarint(appendTag(b, field, wireVarint), uint64(v))
}

// appendLen appends the tag and length of a length-delimited field whose n
// bytes follow.
func appendLen(b []byte, field int, n int) []byte {
	return appendVarint(appendTag(b, field, wireBytes), uint64(n))
}

// appendBytes appends a bytes or nested-message field.
func appendBytes(b []byte, field int, p []byte) []byte {
	return append(appendLen(b, field, len(p)), p...)
}

// appendString appends a string field.
func appendString(b []byte, field int, s string) []byte {
	return append(appendLen(b, field, len(s)), s...)
}

// appendFloat appends a float field (fixed 32 bits, little endian).
func appendFloat(b []byte, field int, f float32) []byte {
	u := math.Float32bits(f)
	return append(appendTag(b, field, wireFixed32), byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
}

// fieldLen is the size of a length-delimited field holding n bytes.
func fieldLen(field int, n int64) int64 {
	return int64(varintLen(uint64(field)<<3|wireBytes)) + int64(varintLen(uint64(n))) + n
}
