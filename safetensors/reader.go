package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
)

// ErrMalformed is wrapped by every error about a file's structure.
var ErrMalformed = errors.New("malformed safetensors file")

// Limits on what a file may claim, so a hostile header cannot make the reader
// allocate or loop far beyond the file's own size.
const (
	// MaxHeaderSize is the largest JSON header accepted (Hugging Face's own
	// reader refuses larger ones too).
	MaxHeaderSize = 100 << 20
	// MaxDims is the most dimensions a tensor may have.
	MaxDims = 32
	// metadataKey names the optional string-to-string map in the header.
	metadataKey = "__metadata__"
)

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType DType
	// Shape is row-major (PyTorch's order): the last dimension varies fastest.
	Shape []int64
	// Begin and End are data_offsets: the byte range [Begin, End) relative to
	// the start of the data buffer (File.DataOffset).
	Begin, End int64
}

// Elements returns the product of the shape (1 for a scalar).
func (t TensorInfo) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is a parsed safetensors file. Tensor data stays in the source and is
// read by Data and Float32s until Close.
type File struct {
	Path     string            // as given to Open; "" for Parse and ParseBytes
	Metadata map[string]string // the __metadata__ entry; empty when absent
	Tensors  []TensorInfo      // in data order
	// DataOffset is where the data buffer starts: 8 plus the header length.
	DataOffset int64
	Size       int64 // total bytes in the file

	r      io.ReaderAt
	closer io.Closer
	byName map[string]int
}

// Open reads and validates the header of the file at path; tensor data is read
// on demand until Close.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		fh.Close()
		return nil, fmt.Errorf("safetensors: %s: not a regular file", path)
	}
	f, err := parse(path, fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, err
	}
	f.closer = fh
	return f, nil
}

// Parse reads and validates a safetensors file of size bytes from r.
func Parse(r io.ReaderAt, size int64) (*File, error) { return parse("", r, size) }

// ParseBytes parses a file held in b, which must not change while the File is used.
func ParseBytes(b []byte) (*File, error) { return parse("", bytes.NewReader(b), int64(len(b))) }

// Close releases the file. It is idempotent and safe on a nil File.
func (f *File) Close() error {
	if f == nil || f.r == nil {
		return nil
	}
	f.r = nil
	if f.closer != nil {
		c := f.closer
		f.closer = nil
		return c.Close()
	}
	return nil
}

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// Names returns the tensor names in data order.
func (f *File) Names() []string {
	names := make([]string, len(f.Tensors))
	for i, t := range f.Tensors {
		names[i] = t.Name
	}
	return names
}

// Data returns a copy of the named tensor's bytes (little-endian, row-major).
func (f *File) Data(name string) ([]byte, error) {
	if f.r == nil {
		return nil, fmt.Errorf("safetensors: %sread after Close", f.prefix())
	}
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("safetensors: %sno tensor %q", f.prefix(), name)
	}
	b := make([]byte, t.End-t.Begin)
	if _, err := f.r.ReadAt(b, f.DataOffset+t.Begin); err != nil {
		return nil, fmt.Errorf("safetensors: %stensor %q: %w", f.prefix(), name, err)
	}
	return b, nil
}

// Float32s returns the named tensor converted to float32: F32 as is, F16 and
// BF16 exactly, F64 rounded to nearest. Other dtypes are an error.
func (f *File) Float32s(name string) ([]float32, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("safetensors: %sno tensor %q", f.prefix(), name)
	}
	b, err := f.Data(name)
	if err != nil {
		return nil, err
	}
	x, err := ToFloat32(t.DType, b)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %stensor %q: %w", f.prefix(), name, err)
	}
	return x, nil
}

func (f *File) prefix() string {
	if f.Path == "" {
		return ""
	}
	return f.Path + ": "
}

// headerEntry is one tensor's JSON object. Numbers stay json.Number so that
// negative, fractional and oversized values are rejected by strconv rather
// than silently converted.
type headerEntry struct {
	DType       *string       `json:"dtype"`
	Shape       []json.Number `json:"shape"`
	DataOffsets []json.Number `json:"data_offsets"`
}

func parse(path string, r io.ReaderAt, size int64) (*File, error) {
	f := &File{Path: path, Size: size, r: r, Metadata: map[string]string{}, byName: map[string]int{}}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("safetensors: %s%s: %w", f.prefix(), fmt.Sprintf(format, args...), ErrMalformed)
	}
	if size < 8 {
		return nil, bad("file of %d bytes is shorter than the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: %sreading the header length: %w", f.prefix(), err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > uint64(size-8) {
		return nil, bad("header length %d exceeds the %d bytes after it", n, size-8)
	}
	if n > MaxHeaderSize {
		return nil, bad("header length %d exceeds the limit of %d", n, MaxHeaderSize)
	}
	if n < 2 {
		return nil, bad("header length %d cannot hold a JSON object", n)
	}
	header := make([]byte, n)
	if _, err := r.ReadAt(header, 8); err != nil {
		return nil, fmt.Errorf("safetensors: %sreading the header: %w", f.prefix(), err)
	}
	f.DataOffset = 8 + int64(n)
	dataLen := size - f.DataOffset
	if header[0] != '{' {
		return nil, bad("header does not start with '{'")
	}

	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, bad("header: %v", err)
	}
	seenMeta := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad("header: %v", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, bad("header: key %v is not a string", tok)
		}
		if name == metadataKey {
			if seenMeta {
				return nil, bad("header: duplicate %s", metadataKey)
			}
			seenMeta = true
			var meta map[string]string
			if err := dec.Decode(&meta); err != nil {
				return nil, bad("header: %s: want an object of strings: %v", metadataKey, err)
			}
			if meta != nil {
				f.Metadata = meta
			}
			continue
		}
		if _, dup := f.byName[name]; dup {
			return nil, bad("tensor %q: listed twice", name)
		}
		if name == "" {
			return nil, bad("tensor with an empty name")
		}
		var e headerEntry
		if err := dec.Decode(&e); err != nil {
			return nil, bad("tensor %q: %v", name, err)
		}
		t, err := e.tensor(name, dataLen)
		if err != nil {
			return nil, bad("tensor %q: %v", name, err)
		}
		f.byName[name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, bad("header: %v", err)
	}
	// JSON allows nothing but whitespace after the object; writers pad with spaces.
	if off := dec.InputOffset(); off < int64(n) && len(bytes.TrimRight(header[off:], " \t\r\n")) > 0 {
		return nil, bad("header: trailing bytes after the JSON object")
	}

	// Ordered and non-overlapping: sort by offset, then each tensor must begin
	// at or after the end of the previous one.
	slices.SortStableFunc(f.Tensors, func(a, b TensorInfo) int {
		if a.Begin != b.Begin {
			return cmpInt(a.Begin, b.Begin)
		}
		return cmpInt(a.End, b.End)
	})
	// The format leaves no holes (the reference reader refuses them too): a header
	// whose length field is off by a few bytes otherwise passes, every tensor shifted.
	end := int64(0)
	for i := range f.Tensors {
		t := f.Tensors[i]
		if i > 0 && t.Begin < f.Tensors[i-1].End {
			return nil, bad("tensor %q: data_offsets [%d, %d) overlap tensor %q's [%d, %d)", t.Name, t.Begin, t.End, f.Tensors[i-1].Name, f.Tensors[i-1].Begin, f.Tensors[i-1].End)
		}
		if t.Begin != end {
			return nil, bad("tensor %q: data_offsets start at %d, but the data before it ends at %d (a hole)", t.Name, t.Begin, end)
		}
		end = t.End
		f.byName[t.Name] = i
	}
	if end != dataLen {
		return nil, bad("the tensors' data ends at %d of the %d data bytes after the header (is the header length wrong?)", end, dataLen)
	}
	return f, nil
}

// tensor validates one header entry against the data buffer's length.
func (e headerEntry) tensor(name string, dataLen int64) (TensorInfo, error) {
	t := TensorInfo{Name: name}
	if e.DType == nil {
		return t, errors.New("dtype: missing")
	}
	t.DType = DType(*e.DType)
	if !t.DType.Valid() {
		return t, fmt.Errorf("dtype: unknown %q", *e.DType)
	}
	if e.Shape == nil {
		return t, errors.New("shape: missing")
	}
	if len(e.Shape) > MaxDims {
		return t, fmt.Errorf("shape: %d dimensions, more than %d", len(e.Shape), MaxDims)
	}
	elems := int64(1)
	for i, s := range e.Shape {
		d, err := strconv.ParseInt(s.String(), 10, 64)
		if err != nil || d < 0 {
			return t, fmt.Errorf("shape: dimension %d is %s, want an integer >= 0", i, s)
		}
		t.Shape = append(t.Shape, d)
		if d != 0 && elems > math.MaxInt64/d {
			return t, fmt.Errorf("shape: %v overflows int64", e.Shape)
		}
		elems *= d
	}
	if t.Shape == nil {
		t.Shape = []int64{}
	}
	if len(e.DataOffsets) != 2 {
		return t, fmt.Errorf("data_offsets: %d values, want [begin, end]", len(e.DataOffsets))
	}
	var off [2]int64
	for i, s := range e.DataOffsets {
		v, err := strconv.ParseInt(s.String(), 10, 64)
		if err != nil || v < 0 {
			return t, fmt.Errorf("data_offsets: %s is not an integer >= 0", s)
		}
		off[i] = v
	}
	t.Begin, t.End = off[0], off[1]
	if t.Begin > t.End {
		return t, fmt.Errorf("data_offsets: begin %d is after end %d", t.Begin, t.End)
	}
	if t.End > dataLen {
		return t, fmt.Errorf("data_offsets: end %d is past the %d-byte data buffer", t.End, dataLen)
	}
	size := t.DType.Size()
	if elems > math.MaxInt64/size || t.End-t.Begin != elems*size {
		return t, fmt.Errorf("data_offsets: [%d, %d) holds %d bytes, but shape %v of %s needs %d·%d", t.Begin, t.End, t.End-t.Begin, t.Shape, t.DType, elems, size)
	}
	return t, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
