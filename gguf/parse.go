package gguf

import (
	"errors"
	"fmt"
	"io"
	"math"
)

// Smallest encodings, used to bound counts by the bytes left before allocating.
const (
	minKVSize         = 8 + 1 + 4 + 1 // key length, a 1-byte key, type, a 1-byte value
	minTensorInfoSize = 8 + 4 + 4 + 8 // name length (empty name), n_dims 0, type, offset
)

// parse reads and validates the header of a GGUF file of size bytes from r, or
// from mem when the file is in memory (then r reads mem). name is used in error
// messages only.
func parse(name string, r io.ReaderAt, size int64, mem []byte) (*File, error) {
	fail := func(context string, err error) error {
		return &FormatError{File: name, Context: context, Err: err}
	}
	if size < 0 {
		return nil, fail("", fmt.Errorf("negative size %d", size))
	}
	var d *decoder
	if mem != nil {
		d = newMemDecoder(mem)
	} else {
		d = newDecoder(r, size)
	}
	f := &File{Path: name, Size: size, src: r}

	if err := f.parseHeader(d); err != nil {
		return nil, fail("header", err)
	}
	nTensors, err := d.count(minTensorInfoSize)
	if err != nil {
		return nil, fail("header: tensor count", err)
	}
	nKV, err := d.count(minKVSize)
	if err != nil {
		return nil, fail("header: metadata count", err)
	}

	f.Meta = &Metadata{index: make(map[string]int, min(nKV, 64))}
	for i := range nKV {
		key, err := d.str()
		if err != nil {
			return nil, fail(fmt.Sprintf("key %d of %d", i, nKV), err)
		}
		if key == "" {
			return nil, fail(fmt.Sprintf("key %d of %d", i, nKV), errors.New("empty key"))
		}
		if f.Meta.Has(key) {
			return nil, fail(keyCtx(key), errors.New("duplicate key"))
		}
		t, err := d.u32()
		if err != nil {
			return nil, fail(keyCtx(key), fmt.Errorf("value type: %w", err))
		}
		v, err := d.value(ValueType(t), 1)
		if err != nil {
			return nil, fail(keyCtx(key), err)
		}
		f.Meta.add(key, v)
	}
	if f.Alignment, err = alignment(f.Meta); err != nil {
		return nil, fail(keyCtx(KeyAlignment), err)
	}

	f.Tensors = make([]TensorInfo, 0, nTensors)
	f.byName = make(map[string]int, min(nTensors, 64))
	for i := range nTensors {
		t, err := readTensorInfo(d)
		if err != nil {
			ctx := fmt.Sprintf("tensor %d of %d", i, nTensors)
			if t.Name != "" {
				ctx = tensorCtx(t.Name)
			}
			return nil, fail(ctx, err)
		}
		if _, dup := f.byName[t.Name]; dup {
			return nil, fail(tensorCtx(t.Name), errors.New("duplicate tensor name"))
		}
		f.byName[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}
	f.HeaderSize = d.pos

	if err := f.checkLayout(); err != nil {
		return nil, err
	}
	return f, nil
}

// parseHeader checks the magic and version.
func (f *File) parseHeader(d *decoder) error {
	magic, err := d.next(4)
	if err != nil {
		return fmt.Errorf("magic: %w", err)
	}
	if string(magic) != Magic {
		return fmt.Errorf("bad magic %q, want %q", magic, Magic)
	}
	v, err := d.u32()
	if err != nil {
		return fmt.Errorf("version: %w", err)
	}
	switch {
	case v == 2 || v == 3:
		// v2 and v3 share the little-endian layout; v3 only added big-endian files.
	case v != 0 && v&0xFFFF == 0:
		return fmt.Errorf("version %#x: big-endian file or byte order mismatch; only little-endian GGUF is supported", v)
	case v == 1:
		return errors.New("GGUF v1 is not supported (32-bit counts); convert the file with a current llama.cpp")
	default:
		return fmt.Errorf("unsupported version %d, want 2 or 3", v)
	}
	f.Version = v
	return nil
}

// readTensorInfo reads one tensor info and validates it on its own. On error the
// returned info carries the name if it was read, for the error's context.
func readTensorInfo(d *decoder) (TensorInfo, error) {
	var t TensorInfo
	var err error
	if t.Name, err = d.str(); err != nil {
		return TensorInfo{}, fmt.Errorf("name: %w", err)
	}
	nd, err := d.u32()
	if err != nil {
		return t, fmt.Errorf("n_dims: %w", err)
	}
	if nd > MaxDims {
		return t, fmt.Errorf("%d dimensions, more than %d", nd, MaxDims)
	}
	if nd > 0 {
		t.Dims = make([]int64, nd)
	}
	for j := range t.Dims {
		n, err := d.u64()
		if err != nil {
			return t, fmt.Errorf("dimension %d: %w", j, err)
		}
		if n > math.MaxInt64 {
			return t, fmt.Errorf("dimension %d is %d, too large", j, n)
		}
		t.Dims[j] = int64(n)
	}
	typ, err := d.u32()
	if err != nil {
		return t, fmt.Errorf("type: %w", err)
	}
	t.Type = Type(typ)
	off, err := d.u64()
	if err != nil {
		return t, fmt.Errorf("offset: %w", err)
	}
	if off > math.MaxInt64 {
		return t, fmt.Errorf("offset %d beyond end of file (size %d)", off, d.size)
	}
	t.Offset = int64(off)
	if err := t.Validate(); err != nil {
		return t, err
	}
	return t, nil
}

// keyCtx and tensorCtx name a key or tensor in an error, cutting hostile
// megabyte-long names short.
func keyCtx(key string) string     { return "key " + quoteShort(key) }
func tensorCtx(name string) string { return "tensor " + quoteShort(name) }

func quoteShort(s string) string {
	const max = 96
	if len(s) > max {
		return fmt.Sprintf("%q... (%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}
