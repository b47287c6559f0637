package gguf

import (
	"fmt"
	"io"
)

// WriteTo writes an exact copy of f to w: the header re-encoded from Meta and
// Tensors, each tensor's data, and every other byte (alignment padding, gaps
// between tensors, trailing data) copied from the original. Reading a file and
// writing it back this way gives identical bytes. It fails if Meta or Tensors
// were changed in a way that moves data; use Builder for that.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	if f.src == nil {
		return 0, ErrClosed
	}
	return f.exactBuilder().WriteTo(w)
}

var _ io.WriterTo = (*File)(nil)

// WriteFile writes an exact copy of f to path, atomically like Builder.WriteFile.
// path may be f's own path.
func (f *File) WriteFile(path string) error {
	if f.src == nil {
		return ErrClosed
	}
	return f.exactBuilder().WriteFile(path)
}

// exactBuilder describes f as it is on disk.
func (f *File) exactBuilder() *Builder {
	b := f.Builder()
	for i := range b.Tensors {
		b.Tensors[i].Offset = f.Tensors[i].Offset
	}
	b.exact = &exactLayout{src: f.readerAt(), headerSize: f.HeaderSize, size: f.Size}
	return b
}

// Builder returns a Builder for a new file with f's version, a copy of its
// metadata and its tensors in order, whose data is read from f when the new file
// is written (so f must stay open until then). Change the metadata or tensors,
// then call WriteTo or WriteFile; the layout is recomputed. This is how a
// converted or merged model is derived from an existing one.
func (f *File) Builder() *Builder {
	b := &Builder{Version: f.Version, Meta: f.Meta.Clone(), Tensors: make([]Tensor, len(f.Tensors))}
	for i, t := range f.Tensors {
		info := t.clone()
		info.Offset = 0
		b.Tensors[i] = Tensor{TensorInfo: info, Data: f.dataFunc(t.Name)}
	}
	return b
}

// dataFunc streams the named tensor's bytes from f as validated when f was
// parsed. It looks the name up when called, so a Builder whose tensors were
// renamed or reordered still gets each tensor's own data.
func (f *File) dataFunc(name string) DataFunc {
	return func(w io.Writer) error {
		i, err := f.index(name)
		if err != nil {
			return err
		}
		s := f.spans[i]
		if f.mapped != nil {
			_, err := w.Write(f.mapped[s.off : s.off+s.size])
			return err
		}
		_, err = io.Copy(w, io.NewSectionReader(f.src, s.off, s.size))
		return err
	}
}

// CopyFile reads the GGUF file src and writes it back to dst through the
// writer, byte for byte; dst is replaced atomically.
func CopyFile(dst, src string) error {
	f, err := Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.WriteFile(dst); err != nil {
		return fmt.Errorf("gguf: copying %s: %w", src, err)
	}
	return nil
}
