package gguf

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"
)

// decodeBufSize is the read-ahead window. Headers are read in small pieces, so
// buffering keeps an io.ReaderAt backed by a file from doing a syscall per field.
const decodeBufSize = 64 << 10

// decoder reads little-endian GGUF primitives from an io.ReaderAt, refusing any
// read that would pass the end of the input before allocating for it.
type decoder struct {
	r      io.ReaderAt
	mem    []byte // the whole input when it is in memory: read in place
	size   int64
	pos    int64  // offset of the next byte to decode
	buf    []byte // window of the input starting at bufPos
	bufPos int64
	bufLen int // valid bytes in buf
}

// newDecoder reads size bytes from r.
func newDecoder(r io.ReaderAt, size int64) *decoder {
	return &decoder{r: r, size: size, buf: make([]byte, min(size, decodeBufSize))}
}

// newMemDecoder reads b in place, without a copy.
func newMemDecoder(b []byte) *decoder {
	return &decoder{mem: b, size: int64(len(b))}
}

// remaining returns the number of input bytes after pos.
func (d *decoder) remaining() int64 { return d.size - d.pos }

func (d *decoder) truncated(n int64) error {
	return fmt.Errorf("need %d bytes at offset %d, file size is %d: %w", n, d.pos, d.size, io.ErrUnexpectedEOF)
}

// next returns the next n bytes, n <= len(d.buf); the slice is valid until the next call.
func (d *decoder) next(n int) ([]byte, error) {
	if int64(n) > d.remaining() {
		return nil, d.truncated(int64(n))
	}
	if d.mem != nil {
		b := d.mem[d.pos : d.pos+int64(n)]
		d.pos += int64(n)
		return b, nil
	}
	if d.pos < d.bufPos || d.pos+int64(n) > d.bufPos+int64(d.bufLen) {
		want := int(min(int64(len(d.buf)), d.remaining()))
		got, err := d.r.ReadAt(d.buf[:want], d.pos)
		if got < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("reading %d bytes at offset %d: %w", n, d.pos, err)
		}
		d.bufPos, d.bufLen = d.pos, got
	}
	i := int(d.pos - d.bufPos)
	d.pos += int64(n)
	return d.buf[i : i+n], nil
}

func (d *decoder) u8() (uint8, error) {
	b, err := d.next(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (d *decoder) u16() (uint16, error) {
	b, err := d.next(2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (d *decoder) u32() (uint32, error) {
	b, err := d.next(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *decoder) u64() (uint64, error) {
	b, err := d.next(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// count reads a u64 element count and checks that count elements of at least
// minSize bytes each fit in what is left of the input, so callers may allocate
// for it.
func (d *decoder) count(minSize int64) (int64, error) {
	n, err := d.u64()
	if err != nil {
		return 0, err
	}
	if minSize > 0 && n > uint64(d.remaining()/minSize) {
		return 0, fmt.Errorf("count %d needs at least %d bytes each but only %d bytes are left", n, minSize, d.remaining())
	}
	return int64(n), nil
}

// str reads a length-prefixed string.
func (d *decoder) str() (string, error) {
	n, err := d.u64()
	if err != nil {
		return "", err
	}
	if n > uint64(d.remaining()) {
		return "", fmt.Errorf("string length %d exceeds the %d bytes left in the file", n, d.remaining())
	}
	if d.mem != nil || n <= uint64(len(d.buf)) {
		b, err := d.next(int(n))
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
	// Longer than the window: copy straight into the string's storage, once.
	var sb strings.Builder
	sb.Grow(int(n))
	got, err := io.Copy(&sb, io.NewSectionReader(d.r, d.pos, int64(n)))
	if got != int64(n) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return "", fmt.Errorf("reading string of %d bytes at offset %d: %w", n, d.pos, err)
	}
	d.pos += int64(n)
	return sb.String(), nil
}

// value reads one value of type t; depth is the array nesting level of the
// value being read (1 at top level).
func (d *decoder) value(t ValueType, depth int) (Value, error) {
	var x any
	var err error
	switch t {
	case ValueUint8:
		x, err = d.u8()
	case ValueInt8:
		var u uint8
		u, err = d.u8()
		x = int8(u)
	case ValueUint16:
		x, err = d.u16()
	case ValueInt16:
		var u uint16
		u, err = d.u16()
		x = int16(u)
	case ValueUint32:
		x, err = d.u32()
	case ValueInt32:
		var u uint32
		u, err = d.u32()
		x = int32(u)
	case ValueFloat32:
		var u uint32
		u, err = d.u32()
		x = math.Float32frombits(u)
	case ValueBool:
		x, err = d.boolean()
	case ValueString:
		x, err = d.str()
	case ValueUint64:
		x, err = d.u64()
	case ValueInt64:
		var u uint64
		u, err = d.u64()
		x = int64(u)
	case ValueFloat64:
		var u uint64
		u, err = d.u64()
		x = math.Float64frombits(u)
	case ValueArray:
		return d.array(depth)
	default:
		return Value{}, fmt.Errorf("unknown value type %d", uint32(t))
	}
	if err != nil {
		return Value{}, err
	}
	return Value{typ: t, x: x}, nil
}

// boolean reads a bool byte. Only 0 and 1 are accepted: any other byte would
// not survive a read-write round trip unchanged.
func (d *decoder) boolean() (bool, error) {
	b, err := d.u8()
	if err != nil {
		return false, err
	}
	if b > 1 {
		return false, fmt.Errorf("bool byte is %d, want 0 or 1", b)
	}
	return b == 1, nil
}

// array reads an array's element type, length and elements.
func (d *decoder) array(depth int) (Value, error) {
	if depth > MaxArrayDepth {
		return Value{}, fmt.Errorf("arrays nested deeper than %d", MaxArrayDepth)
	}
	et, err := d.u32()
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	if elem >= valueTypeCount {
		return Value{}, fmt.Errorf("array of unknown value type %d", et)
	}
	n, err := d.count(elem.minSize())
	if err != nil {
		return Value{}, fmt.Errorf("array of %s: %w", elem, err)
	}
	var x any
	switch elem {
	case ValueUint8:
		x, err = readArray(d, n, d.u8)
	case ValueInt8:
		x, err = readArray(d, n, func() (int8, error) { u, err := d.u8(); return int8(u), err })
	case ValueUint16:
		x, err = readArray(d, n, d.u16)
	case ValueInt16:
		x, err = readArray(d, n, func() (int16, error) { u, err := d.u16(); return int16(u), err })
	case ValueUint32:
		x, err = readArray(d, n, d.u32)
	case ValueInt32:
		x, err = readArray(d, n, func() (int32, error) { u, err := d.u32(); return int32(u), err })
	case ValueFloat32:
		x, err = readArray(d, n, func() (float32, error) { u, err := d.u32(); return math.Float32frombits(u), err })
	case ValueBool:
		x, err = readArray(d, n, d.boolean)
	case ValueString:
		x, err = d.strs(n)
	case ValueUint64:
		x, err = readArray(d, n, d.u64)
	case ValueInt64:
		x, err = readArray(d, n, func() (int64, error) { u, err := d.u64(); return int64(u), err })
	case ValueFloat64:
		x, err = readArray(d, n, func() (float64, error) { u, err := d.u64(); return math.Float64frombits(u), err })
	case ValueArray:
		// Grow arrays of arrays as elements arrive instead of trusting n: each
		// nesting level could otherwise claim the whole remaining input again.
		x, err = readNested(d, n, depth)
	}
	if err != nil {
		return Value{}, err
	}
	return Value{typ: ValueArray, elem: elem, x: x}, nil
}

// readArray reads n elements with read. n has been bounded by the input size.
func readArray[T any](d *decoder, n int64, read func() (T, error)) ([]T, error) {
	out := make([]T, n)
	for i := range out {
		v, err := read()
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// readNested reads n arrays nested at depth+1.
func readNested(d *decoder, n int64, depth int) ([]Value, error) {
	out := make([]Value, 0, min(n, 64))
	for i := range n {
		v, err := d.array(depth + 1)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// strs reads n length-prefixed strings. Vocabularies hold hundreds of
// thousands of short strings, so rather than allocate each one it copies the
// whole encoded array into one string and slices the elements out of it.
func (d *decoder) strs(n int64) ([]string, error) {
	start := d.pos
	for i := range n { // first pass: validate the lengths and find the end
		l, err := d.u64()
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		if l > uint64(d.remaining()) {
			return nil, fmt.Errorf("element %d: string length %d exceeds the %d bytes left in the file", i, l, d.remaining())
		}
		d.pos += int64(l)
	}
	blob, err := d.region(start, d.pos)
	if err != nil {
		return nil, err
	}
	out := make([]string, n)
	p := 0
	for i := range out {
		l := 0
		for k := 7; k >= 0; k-- {
			l = l<<8 | int(blob[p+k])
		}
		out[i] = blob[p+8 : p+8+l]
		p += 8 + l
	}
	return out, nil
}

// region returns the input bytes [from, to), already checked to be in range,
// as one string.
func (d *decoder) region(from, to int64) (string, error) {
	if d.mem != nil {
		return string(d.mem[from:to]), nil
	}
	var sb strings.Builder
	sb.Grow(int(to - from))
	got, err := io.Copy(&sb, io.NewSectionReader(d.r, from, to-from))
	if got != to-from {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return "", fmt.Errorf("reading %d bytes at offset %d: %w", to-from, from, err)
	}
	return sb.String(), nil
}
