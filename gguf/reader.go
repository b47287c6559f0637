package gguf

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// File is a parsed GGUF file. Its exported fields describe the file as read;
// tensor data is reached through Data and Reader until Close. Methods other
// than Close may be called concurrently.
type File struct {
	Path    string // path given to Open; "" for Parse and ParseBytes
	Version uint32 // 2 or 3
	Meta    *Metadata
	Tensors []TensorInfo // in file order

	Alignment  int64 // general.alignment, or DefaultAlignment
	HeaderSize int64 // bytes from the magic through the last tensor info
	// DataOffset is where the data section starts: HeaderSize rounded up to
	// Alignment. A file without tensors may end before that; then it is Size.
	DataOffset int64
	Size       int64 // total bytes in the file

	src    io.ReaderAt // nil after Close
	mapped []byte      // the whole file, for Open and ParseBytes; nil for Parse
	unmap  func() error
	byName map[string]int
	spans  []span // absolute data location of each tensor, as validated
}

// span is a validated byte range of the file.
type span struct{ off, size int64 }

// Format constants.
const (
	Magic            = "GGUF"
	Version          = 3  // the version the writer produces by default
	DefaultAlignment = 32 // data alignment when general.alignment is absent

	// KeyAlignment is the metadata key that overrides DefaultAlignment; it must hold a u32 power of two.
	KeyAlignment = "general.alignment"
)

// Open maps the file at path read-only and parses it; nothing is copied and the
// tensor views it hands out stay valid until Close. The file must not shrink
// while open: touching a mapped page past its new end faults (SIGBUS).
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	// The mapping outlives the descriptor, so it can be closed right away.
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("gguf: %s: not a regular file", path)
	}
	data, unmap, err := mapFile(fh, st.Size())
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", path, err)
	}
	f, err := parse(path, bytes.NewReader(data), int64(len(data)), data)
	if err != nil {
		_ = unmap()
		return nil, err
	}
	f.mapped, f.unmap = data, unmap
	return f, nil
}

// Parse reads and validates a GGUF file of size bytes from r. Tensor data stays
// in r and is read through Reader; Data returns ErrNotMapped.
func Parse(r io.ReaderAt, size int64) (*File, error) {
	return parse("", r, size, nil)
}

// ParseBytes parses a GGUF file held in b. Data returns views into b, which the
// caller must not modify while the File is in use.
func ParseBytes(b []byte) (*File, error) {
	f, err := parse("", bytes.NewReader(b), int64(len(b)), b)
	if err != nil {
		return nil, err
	}
	f.mapped = b
	return f, nil
}

// Close releases the mapping; views from Data must not be used afterwards.
// It is idempotent, safe on a nil File, and must not race with other methods.
func (f *File) Close() error {
	if f == nil || f.src == nil {
		return nil
	}
	f.src, f.mapped = nil, nil
	if f.unmap != nil {
		unmap := f.unmap
		f.unmap = nil
		if err := unmap(); err != nil {
			return fmt.Errorf("gguf: %s: unmap: %w", f.Path, err)
		}
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

// index returns the position of the named tensor, or an error naming it.
func (f *File) index(name string) (int, error) {
	if f.src == nil {
		return 0, ErrClosed
	}
	i, ok := f.byName[name]
	if !ok {
		return 0, fmt.Errorf("gguf: %stensor %q: %w", f.prefix(), name, ErrNoTensor)
	}
	return i, nil
}

// Data returns the named tensor's bytes as a read-only view of the mapping,
// valid until Close. Writing to it faults.
func (f *File) Data(name string) ([]byte, error) {
	i, err := f.index(name)
	if err != nil {
		return nil, err
	}
	if f.mapped == nil {
		return nil, ErrNotMapped
	}
	s := f.spans[i]
	return f.mapped[s.off : s.off+s.size : s.off+s.size], nil
}

// Release drops bytes [off, off+n) of the named tensor's data from the process's
// resident memory, for a caller that has copied them and will not read them again soon:
// a mapping's pages count in the process's resident set from their first read until
// Close, so a loader that copies every tensor of a mapped file into a buffer of its own
// would otherwise hold the model twice. Views from Data stay valid (a later read maps
// the pages again from the page cache or the file). The pages at either end, which may
// hold a neighbour's bytes too, are dropped as well, and come back the same way. It does
// nothing for files not mapped by Open.
func (f *File) Release(name string, off, n int64) error {
	i, err := f.index(name)
	if err != nil {
		return err
	}
	s := f.spans[i]
	if off < 0 || n < 0 || off+n > s.size {
		return fmt.Errorf("gguf: %stensor %q: release of bytes [%d, %d) of %d", f.prefix(), name, off, off+n, s.size)
	}
	if f.mapped == nil || f.unmap == nil || n == 0 {
		return nil
	}
	page := int64(os.Getpagesize())
	from, to := (s.off+off)/page*page, s.off+off+n
	if err := dropPages(f.mapped[from:to]); err != nil {
		return fmt.Errorf("gguf: %stensor %q: releasing its pages: %w", f.prefix(), name, err)
	}
	return nil
}

// Reader returns a reader over the named tensor's bytes. For files from Open it
// fails with ErrClosed once the File is closed.
func (f *File) Reader(name string) (*io.SectionReader, error) {
	i, err := f.index(name)
	if err != nil {
		return nil, err
	}
	s := f.spans[i]
	return io.NewSectionReader(f.readerAt(), s.off, s.size), nil
}

// readerAt returns a ReaderAt over the whole file that stops working at Close
// for mapped files, instead of touching unmapped memory.
func (f *File) readerAt() io.ReaderAt {
	if f.mapped == nil {
		return f.src
	}
	return guardedReader{f}
}

type guardedReader struct{ f *File }

// ReadAt reads from the mapping, or fails with ErrClosed after Close.
func (g guardedReader) ReadAt(p []byte, off int64) (int, error) {
	if g.f.mapped == nil {
		return 0, ErrClosed
	}
	return bytes.NewReader(g.f.mapped).ReadAt(p, off)
}

func (f *File) prefix() string {
	if f.Path == "" {
		return ""
	}
	return f.Path + ": "
}
