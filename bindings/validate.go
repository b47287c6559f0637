package bindings

/*
#include "llama.h"
*/
import "C"

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
)

// Limits mirrored from ggml's gguf.cpp, so a file this check accepts is one gguf.cpp
// parses; checking in Go first turns every malformed file into an error naming the file
// instead of a path through C that might assert.
const (
	ggufMagic            = "GGUF"
	ggufMaxVersion       = 3
	ggufDefaultAlignment = 32
	ggufMaxStringLength  = 1 << 30 // GGUF_MAX_STRING_LENGTH
	ggmlMaxDims          = 4       // GGML_MAX_DIMS
	ggmlMaxName          = 64      // GGML_MAX_NAME, including the terminating NUL
)

// GGUF metadata value types (enum gguf_type).
const (
	ggufTypeUint8 uint32 = iota
	ggufTypeInt8
	ggufTypeUint16
	ggufTypeInt16
	ggufTypeUint32
	ggufTypeInt32
	ggufTypeFloat32
	ggufTypeBool
	ggufTypeString
	ggufTypeArray
	ggufTypeUint64
	ggufTypeInt64
	ggufTypeFloat64
	ggufTypeCount
)

// ggufScalarSize is the encoded size of each fixed-size value type; 0 for string/array.
var ggufScalarSize = [ggufTypeCount]uint64{1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8}

// ggufValue is one metadata value as far as validation needs it: its type, and for
// scalars and strings the value. Array contents are skipped, not kept, so a 250k-entry
// token list costs nothing.
type ggufValue struct {
	typ  uint32 // gguf type; ggufTypeArray for arrays
	elem uint32 // element type of an array
	n    uint64 // array length
	val  any    // uint8 … float64, bool or string; nil for arrays
}

// ggufTensor is one tensor-info entry.
type ggufTensor struct {
	name   string
	ne     [ggmlMaxDims]int64
	typ    uint32 // enum ggml_type
	offset uint64 // relative to the data section
	nbytes uint64
}

// ggufHeader is what validation learned about a GGUF file.
type ggufHeader struct {
	size      int64 // file size
	version   uint32
	kv        map[string]ggufValue
	tensors   []ggufTensor
	alignment uint64
	dataStart int64 // absolute offset of the tensor data section
}

// str returns the string value of key, if key holds a string.
func (h *ggufHeader) str(key string) (string, bool) {
	v, ok := h.kv[key]
	if !ok || v.typ != ggufTypeString {
		return "", false
	}
	return v.val.(string), true
}

// tensor returns the tensor named name.
func (h *ggufHeader) tensor(name string) (ggufTensor, bool) {
	for _, t := range h.tensors {
		if t.name == name {
			return t, true
		}
	}
	return ggufTensor{}, false
}

// formatError says why a file is not a valid GGUF; it matches ErrInvalidGGUF.
type formatError struct{ msg string }

func (e *formatError) Error() string        { return ErrInvalidGGUF.Error() + ": " + e.msg }
func (e *formatError) Is(target error) bool { return target == ErrInvalidGGUF }

// invalidf builds a formatError.
func invalidf(format string, args ...any) error {
	return &formatError{msg: fmt.Sprintf(format, args...)}
}

// readGGUFHeader checks path the way gguf.cpp and llama.cpp's loader will: magic,
// version, counts, every key and value bounded by the file size, tensor names, shapes,
// types (sizes taken from the linked ggml), offsets, and that all tensor data lies
// inside the file. Errors name the file.
func readGGUFHeader(path string) (*ggufHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	h, err := parseGGUFHeader(bufio.NewReaderSize(f, 1<<16), st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// parseGGUFHeader reads a GGUF header from r, whose total length is size.
func parseGGUFHeader(r io.Reader, size int64) (*ggufHeader, error) {
	rd := &headerReader{r: r, size: size}
	h := &ggufHeader{size: size, kv: map[string]ggufValue{}, alignment: ggufDefaultAlignment}

	if size < 4 {
		return nil, invalidf("file is %d bytes, too short for the GGUF magic (is it a GGUF model?)", size)
	}
	if magic := string(rd.bytes(4, "magic")); rd.err == nil && magic != ggufMagic {
		return nil, invalidf("magic is %q, want %q (is it a GGUF model?)", magic, ggufMagic)
	}
	h.version = rd.u32("version")
	if rd.err != nil {
		return nil, rd.err
	}
	switch {
	case h.version == 0 || h.version&0xFFFF == 0:
		return nil, invalidf("version %#x is invalid (wrong endianness?)", h.version)
	case h.version == 1:
		return nil, invalidf("GGUF v1 is no longer supported; re-convert the model")
	case h.version > ggufMaxVersion:
		return nil, invalidf("GGUF version %d is newer than the supported %d", h.version, ggufMaxVersion)
	}
	nTensors := rd.u64("tensor count")
	nKV := rd.u64("metadata count")
	if rd.err != nil {
		return nil, rd.err
	}
	// Each tensor info takes at least 24 bytes and each key-value at least 13, so larger
	// counts cannot fit in the file; rejecting them early also bounds allocation.
	if nTensors > uint64(size)/24 {
		return nil, invalidf("tensor count %d cannot fit in %d bytes", nTensors, size)
	}
	if nKV > uint64(size)/13 {
		return nil, invalidf("metadata count %d cannot fit in %d bytes", nKV, size)
	}

	for i := uint64(0); i < nKV; i++ {
		key := rd.str(fmt.Sprintf("metadata key %d", i))
		if rd.err != nil {
			return nil, rd.err
		}
		if key == "" {
			return nil, invalidf("metadata key %d is empty", i)
		}
		if _, dup := h.kv[key]; dup {
			return nil, invalidf("duplicate metadata key %q", key)
		}
		v, err := rd.value(key)
		if err != nil {
			return nil, err
		}
		h.kv[key] = v
	}
	if v, ok := h.kv["general.alignment"]; ok {
		if v.typ != ggufTypeUint32 {
			return nil, invalidf("general.alignment has type %d, want uint32", v.typ)
		}
		a := uint64(v.val.(uint32))
		if a == 0 || a&(a-1) != 0 {
			return nil, invalidf("general.alignment %d is not a power of 2", a)
		}
		h.alignment = a
	}

	names := make(map[string]struct{}, nTensors)
	for i := uint64(0); i < nTensors; i++ {
		t, err := rd.tensorInfo(i)
		if err != nil {
			return nil, err
		}
		if _, dup := names[t.name]; dup {
			return nil, invalidf("duplicate tensor name %q", t.name)
		}
		names[t.name] = struct{}{}
		h.tensors = append(h.tensors, t)
	}

	h.dataStart = rd.pos
	if nTensors > 0 {
		h.dataStart = int64(alignUp(uint64(rd.pos), h.alignment))
		if h.dataStart > size {
			return nil, invalidf("file ends (%d bytes) before the tensor data section at %d: truncated", size, h.dataStart)
		}
	}
	// gguf.cpp requires tensors to be packed in order, each padded to the alignment.
	var want uint64
	for _, t := range h.tensors {
		if t.offset != want {
			return nil, invalidf("tensor %q has data offset %d, want %d", t.name, t.offset, want)
		}
		end := uint64(h.dataStart) + t.offset + t.nbytes
		if end < t.offset || end > uint64(size) {
			return nil, invalidf("tensor %q data ends at byte %d but the file has %d bytes: truncated or corrupt (re-download it)", t.name, end, size)
		}
		want = alignUp(t.offset+t.nbytes, h.alignment)
	}
	return h, nil
}

// alignUp rounds n up to a multiple of the power of two a.
func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

// headerReader reads little-endian GGUF fields, refusing any read past the file's end;
// its first error sticks so callers can check once after a group of reads.
type headerReader struct {
	r    io.Reader
	pos  int64
	size int64
	err  error
	buf  [8]byte
}

// fail records the first error.
func (r *headerReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// check reports whether n more bytes exist, recording a truncation error if not.
func (r *headerReader) check(n uint64, what string) bool {
	if r.err != nil {
		return false
	}
	if n > uint64(r.size-r.pos) {
		r.fail(invalidf("%s at byte %d needs %d bytes but the file has %d: truncated", what, r.pos, n, r.size))
		return false
	}
	return true
}

// bytes reads n bytes.
func (r *headerReader) bytes(n uint64, what string) []byte {
	if !r.check(n, what) {
		return nil
	}
	var b []byte
	if n <= uint64(len(r.buf)) {
		b = r.buf[:n]
	} else {
		b = make([]byte, n)
	}
	if _, err := io.ReadFull(r.r, b); err != nil {
		r.fail(fmt.Errorf("reading %s: %w", what, err))
		return nil
	}
	r.pos += int64(n)
	return b
}

// skip discards n bytes.
func (r *headerReader) skip(n uint64, what string) {
	if !r.check(n, what) {
		return
	}
	if _, err := io.CopyN(io.Discard, r.r, int64(n)); err != nil {
		r.fail(fmt.Errorf("reading %s: %w", what, err))
		return
	}
	r.pos += int64(n)
}

func (r *headerReader) u8(what string) uint8 {
	if b := r.bytes(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *headerReader) u16(what string) uint16 {
	if b := r.bytes(2, what); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *headerReader) u32(what string) uint32 {
	if b := r.bytes(4, what); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *headerReader) u64(what string) uint64 {
	if b := r.bytes(8, what); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// strLen reads a string length and checks it against the limits.
func (r *headerReader) strLen(what string) uint64 {
	n := r.u64(what + " length")
	if r.err == nil && n > ggufMaxStringLength {
		r.fail(invalidf("%s length %d exceeds the maximum %d", what, n, uint64(ggufMaxStringLength)))
	}
	r.check(n, what)
	return n
}

// str reads a length-prefixed string.
func (r *headerReader) str(what string) string {
	n := r.strLen(what)
	if r.err != nil {
		return ""
	}
	return string(r.bytes(n, what))
}

// value reads the type and value of metadata key.
func (r *headerReader) value(key string) (ggufValue, error) {
	what := fmt.Sprintf("value of %q", key)
	v := ggufValue{typ: r.u32(what)}
	if r.err != nil {
		return v, r.err
	}
	if v.typ == ggufTypeArray {
		v.elem = r.u32(what + " element type")
		v.n = r.u64(what + " length")
		if r.err != nil {
			return v, r.err
		}
		if v.elem >= ggufTypeCount || v.elem == ggufTypeArray {
			return v, invalidf("key %q is an array of invalid type %d", key, v.elem)
		}
		if v.elem == ggufTypeString {
			if v.n > uint64(r.size-r.pos)/8 {
				return v, invalidf("key %q: %d strings cannot fit in the file: truncated", key, v.n)
			}
			for i := uint64(0); i < v.n && r.err == nil; i++ {
				r.skip(r.strLen(what), what)
			}
			return v, r.err
		}
		hi, total := bits.Mul64(v.n, ggufScalarSize[v.elem])
		if hi != 0 {
			return v, invalidf("key %q: array of %d elements overflows", key, v.n)
		}
		r.skip(total, what)
		return v, r.err
	}
	switch v.typ {
	case ggufTypeUint8:
		v.val = r.u8(what)
	case ggufTypeInt8:
		v.val = int8(r.u8(what))
	case ggufTypeUint16:
		v.val = r.u16(what)
	case ggufTypeInt16:
		v.val = int16(r.u16(what))
	case ggufTypeUint32:
		v.val = r.u32(what)
	case ggufTypeInt32:
		v.val = int32(r.u32(what))
	case ggufTypeFloat32:
		v.val = math.Float32frombits(r.u32(what))
	case ggufTypeBool:
		v.val = r.u8(what) != 0
	case ggufTypeString:
		v.val = r.str(what)
	case ggufTypeUint64:
		v.val = r.u64(what)
	case ggufTypeInt64:
		v.val = int64(r.u64(what))
	case ggufTypeFloat64:
		v.val = math.Float64frombits(r.u64(what))
	default:
		return v, invalidf("key %q has invalid type %d", key, v.typ)
	}
	return v, r.err
}

// tensorInfo reads tensor-info entry i and checks its name, shape and type.
func (r *headerReader) tensorInfo(i uint64) (ggufTensor, error) {
	var t ggufTensor
	t.name = r.str(fmt.Sprintf("tensor %d name", i))
	if r.err != nil {
		return t, r.err
	}
	if len(t.name) >= ggmlMaxName {
		return t, invalidf("tensor %d name is %d bytes, the limit is %d", i, len(t.name), ggmlMaxName-1)
	}
	what := fmt.Sprintf("tensor %q", t.name)
	nDims := r.u32(what + " dimension count")
	if r.err != nil {
		return t, r.err
	}
	if nDims > ggmlMaxDims {
		return t, invalidf("%s has %d dimensions, the limit is %d", what, nDims, ggmlMaxDims)
	}
	for j := range t.ne {
		t.ne[j] = 1
		if uint32(j) < nDims {
			t.ne[j] = int64(r.u64(what + " shape"))
		}
		if t.ne[j] < 0 {
			return t, invalidf("%s dimension %d is negative", what, j)
		}
	}
	t.typ = r.u32(what + " type")
	t.offset = r.u64(what + " offset")
	if r.err != nil {
		return t, r.err
	}
	n, ok := tensorElements(t.ne)
	if !ok {
		return t, invalidf("%s shape %v overflows", what, t.ne)
	}
	if t.typ >= uint32(C.GGML_TYPE_COUNT) {
		return t, invalidf("%s has unknown ggml type %d (newer llama.cpp?)", what, t.typ)
	}
	// Sizes come from the linked ggml so new types are measured as ggml measures them.
	blck := uint64(C.ggml_blck_size(C.enum_ggml_type(t.typ)))
	typeSize := uint64(C.ggml_type_size(C.enum_ggml_type(t.typ)))
	if blck == 0 || typeSize == 0 {
		return t, invalidf("%s has removed ggml type %d", what, t.typ)
	}
	if uint64(t.ne[0])%blck != 0 {
		return t, invalidf("%s: row of %d elements is not a multiple of type %d's block size %d", what, t.ne[0], t.typ, blck)
	}
	hi, nbytes := bits.Mul64(n/blck, typeSize)
	if hi != 0 || nbytes > math.MaxInt64 {
		return t, invalidf("%s size overflows", what)
	}
	t.nbytes = nbytes
	return t, nil
}

// tensorElements multiplies a shape out, reporting false on overflow.
func tensorElements(ne [ggmlMaxDims]int64) (uint64, bool) {
	n := uint64(1)
	for _, d := range ne {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, false
		}
		n = lo
	}
	return n, true
}
