package gguf

import (
	"cmp"
	"fmt"
	"slices"
)

// alignment returns the data alignment m asks for: general.alignment, which must
// be a u32 power of two as llama.cpp requires, or DefaultAlignment.
func alignment(m *Metadata) (int64, error) {
	v, ok := m.Get(KeyAlignment)
	if !ok {
		return DefaultAlignment, nil
	}
	a, ok := As[uint32](v)
	if !ok {
		return 0, fmt.Errorf("is %s, want u32", v.typeName())
	}
	if a == 0 || a&(a-1) != 0 {
		return 0, fmt.Errorf("alignment %d is not a power of two", a)
	}
	return int64(a), nil
}

// checkLayout places the data section after the header and checks every
// tensor's data: aligned, inside the file, and not overlapping another.
// It fills f.DataOffset and f.spans.
func (f *File) checkLayout() error {
	fail := func(context string, err error) error {
		return &FormatError{File: f.Path, Context: context, Err: err}
	}
	dataOffset, ok := alignUp(f.HeaderSize, f.Alignment)
	if len(f.Tensors) == 0 {
		// Writers pad the header even without tensors, but nothing depends on
		// it: a file cut right after its header is still complete.
		f.DataOffset = f.HeaderSize
		if ok && dataOffset <= f.Size {
			f.DataOffset = dataOffset
		}
		return nil
	}
	if !ok || dataOffset > f.Size {
		return fail("data section", fmt.Errorf("starts at offset %d (header ends at %d, alignment %d), beyond end of file (size %d)",
			dataOffset, f.HeaderSize, f.Alignment, f.Size))
	}
	f.DataOffset = dataOffset
	dataSize := f.Size - dataOffset

	f.spans = make([]span, len(f.Tensors))
	for i, t := range f.Tensors {
		size := t.size()
		switch {
		case t.Offset%f.Alignment != 0:
			return fail(tensorCtx(t.Name), fmt.Errorf("offset %d is not a multiple of the alignment %d", t.Offset, f.Alignment))
		case t.Offset > dataSize:
			return fail(tensorCtx(t.Name), fmt.Errorf("offset %d (file offset %d) beyond end of file (size %d)",
				t.Offset, dataOffset+t.Offset, f.Size))
		case size > dataSize-t.Offset:
			return fail(tensorCtx(t.Name), fmt.Errorf("%d bytes of data at offset %d (file offset %d) run past end of file (size %d)",
				size, t.Offset, dataOffset+t.Offset, f.Size))
		}
		f.spans[i] = span{off: dataOffset + t.Offset, size: size}
	}

	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(f.spans[a].off, f.spans[b].off) })
	for k := 1; k < len(order); k++ {
		prev, cur := order[k-1], order[k]
		if end := f.spans[prev].off + f.spans[prev].size; end > f.spans[cur].off {
			return fail(tensorCtx(f.Tensors[cur].Name), fmt.Errorf("data at offset %d overlaps tensor %s (offset %d, %d bytes)",
				f.Tensors[cur].Offset, quoteShort(f.Tensors[prev].Name), f.Tensors[prev].Offset, f.spans[prev].size))
		}
	}
	return nil
}
