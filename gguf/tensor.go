package gguf

import (
	"fmt"
	"math"
	"slices"
)

// MaxDims is the most dimensions a tensor may have (GGML_MAX_DIMS).
const MaxDims = 4

// MaxNameLen is the longest tensor name ggml can hold (GGML_MAX_NAME - 1 bytes);
// llama.cpp refuses files with longer names, so both the reader and the writer do too.
const MaxNameLen = 63

// TensorInfo describes one tensor: its name, shape, element type and where its
// data lies.
type TensorInfo struct {
	Name string
	// Dims is ggml's ne: Dims[0] is the row width (the fastest-varying
	// dimension). Its length is n_dims as stored in the file, 0 to MaxDims.
	Dims []int64
	Type Type
	// Offset is the position of the data relative to the start of the data
	// section (File.DataOffset). The reader fills it in; the writer computes it.
	Offset int64
}

// Elements returns the number of elements (the product of Dims, 1 for no dims),
// and false if a dimension is not positive or the product overflows int64.
func (t TensorInfo) Elements() (int64, bool) {
	n := int64(1)
	for _, d := range t.Dims {
		var ok bool
		if n, ok = mulInt64(n, d); !ok || d <= 0 {
			return 0, false
		}
	}
	return n, true
}

// Size returns the number of data bytes the tensor's shape and type need.
func (t TensorInfo) Size() (int64, error) {
	if err := t.Validate(); err != nil {
		return 0, err
	}
	return t.size(), nil
}

// size is Size for an info that passed Validate.
func (t TensorInfo) size() int64 {
	n, _ := t.Elements()
	info, _ := TypeInfo(t.Type)
	return n / info.BlockSize * info.TypeSize
}

// Validate checks what ggml needs of a tensor info: a name of at most
// MaxNameLen bytes, at most MaxDims positive dimensions whose product and byte
// size fit in int64, a known type, and a row width that is a multiple of the
// type's block size. It does not look at Offset.
func (t TensorInfo) Validate() error {
	if len(t.Name) > MaxNameLen {
		return fmt.Errorf("name is %d bytes, longer than ggml's limit of %d", len(t.Name), MaxNameLen)
	}
	if len(t.Dims) > MaxDims {
		return fmt.Errorf("%d dimensions, more than %d", len(t.Dims), MaxDims)
	}
	for i, d := range t.Dims {
		if d <= 0 {
			return fmt.Errorf("dimension %d is %d, want > 0", i, d)
		}
	}
	n, ok := t.Elements()
	if !ok {
		return fmt.Errorf("shape %v: element count overflows int64", t.Dims)
	}
	info, ok := TypeInfo(t.Type)
	if !ok {
		return fmt.Errorf("unknown tensor type %d", uint32(t.Type))
	}
	row := int64(1)
	if len(t.Dims) > 0 {
		row = t.Dims[0]
	}
	if row%info.BlockSize != 0 {
		return fmt.Errorf("row width %d is not a multiple of the %s block size %d", row, info.Name, info.BlockSize)
	}
	if _, ok := mulInt64(n/info.BlockSize, info.TypeSize); !ok {
		return fmt.Errorf("shape %v of %s: byte size overflows int64", t.Dims, info.Name)
	}
	return nil
}

// clone returns a copy of t that shares nothing with it.
func (t TensorInfo) clone() TensorInfo {
	t.Dims = slices.Clip(slices.Clone(t.Dims))
	return t
}

// String formats t as `name [d0 d1] type @offset`.
func (t TensorInfo) String() string {
	return fmt.Sprintf("%s %v %s @%d", t.Name, t.Dims, t.Type, t.Offset)
}

// alignUp rounds n up to a multiple of align (a power of two), and false on overflow.
func alignUp(n, align int64) (int64, bool) {
	if n > math.MaxInt64-(align-1) {
		return 0, false
	}
	return (n + align - 1) &^ (align - 1), true
}
