package gguf

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
)

// ErrSizeMismatch is wrapped when a tensor's data function writes more or fewer
// bytes than its shape and type need.
var ErrSizeMismatch = errors.New("tensor data size mismatch")

// DataFunc streams one tensor's data to w. It must write exactly the tensor's
// size in bytes; the writer calls it once, and only while writing the file.
type DataFunc func(w io.Writer) error

// DataBytes returns a DataFunc that writes b.
func DataBytes(b []byte) DataFunc {
	return func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}

// DataReader returns a DataFunc that copies r to the end; the writer checks
// that the byte count matches the tensor.
func DataReader(r io.Reader) DataFunc {
	return func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	}
}

// Tensor is one tensor to write: its info and the function that produces its data.
type Tensor struct {
	TensorInfo          // Offset is ignored: the writer lays tensors out in order
	Data       DataFunc // called once, in order, while the file is written
}

// Builder describes a GGUF file to write: metadata in the order given, then the
// tensors in the order given, each placed at the next aligned offset. Output is
// a pure function of the Builder's contents. Only one tensor's data passes
// through memory at a time, and only as much of it as its DataFunc holds.
type Builder struct {
	Version uint32    // 0 means Version (3); 2 is also accepted
	Meta    *Metadata // nil means no metadata; general.alignment sets the alignment
	Tensors []Tensor

	// exact, set only by File.WriteTo, keeps the tensors' offsets and takes the
	// bytes around tensor data from the original file.
	exact *exactLayout
}

type exactLayout struct {
	src        io.ReaderAt
	headerSize int64
	size       int64
}

// plan is a validated Builder: the encoded header and where every byte goes.
type plan struct {
	header     []byte
	dataOffset int64
	offsets    []int64 // relative to dataOffset
	sizes      []int64
	order      []int // write order: by offset
	end        int64 // file size
}

// plan validates b and lays the file out without writing anything.
func (b *Builder) plan() (*plan, error) {
	version := b.Version
	if version == 0 {
		version = Version
	}
	if version != 2 && version != 3 {
		return nil, fmt.Errorf("gguf: cannot write version %d, only 2 or 3", version)
	}
	meta := b.Meta
	if meta == nil {
		meta = &Metadata{}
	}
	for _, kv := range meta.kvs {
		if kv.Key == "" {
			return nil, errors.New("gguf: empty metadata key")
		}
		if err := kv.Value.check(1); err != nil {
			return nil, fmt.Errorf("gguf: %s: %w", keyCtx(kv.Key), err)
		}
	}
	align, err := alignment(meta)
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", keyCtx(KeyAlignment), err)
	}

	p := &plan{
		offsets: make([]int64, len(b.Tensors)),
		sizes:   make([]int64, len(b.Tensors)),
		order:   make([]int, len(b.Tensors)),
	}
	infos := make([]TensorInfo, len(b.Tensors))
	names := make(map[string]bool, len(b.Tensors))
	next := int64(0) // canonical layout: end of the previous tensor, padded
	for i, t := range b.Tensors {
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("gguf: %s: %w", tensorCtx(t.Name), err)
		}
		if names[t.Name] {
			return nil, fmt.Errorf("gguf: %s: duplicate tensor name", tensorCtx(t.Name))
		}
		names[t.Name] = true
		if t.Data == nil {
			return nil, fmt.Errorf("gguf: %s: no Data function", tensorCtx(t.Name))
		}
		infos[i] = t.TensorInfo
		p.sizes[i] = t.size()
		p.order[i] = i
		if b.exact != nil {
			p.offsets[i] = t.Offset
			continue
		}
		p.offsets[i] = next
		var ok bool
		if p.sizes[i] <= math.MaxInt64-next {
			next, ok = alignUp(next+p.sizes[i], align)
		}
		if !ok {
			return nil, fmt.Errorf("gguf: %s: data section exceeds int64", tensorCtx(t.Name))
		}
	}

	enc := encoder{}
	enc.header(version, meta, infos, p.offsets)
	p.header = enc.b
	headerSize := int64(len(p.header))
	p.dataOffset, _ = alignUp(headerSize, align)
	p.end = p.dataOffset + next
	if len(b.Tensors) == 0 {
		// Without tensors there is no data section to align; gguf-py's
		// vocab-only files end right after the metadata too.
		p.end = headerSize
	}
	if b.exact != nil {
		if err := p.checkExact(b, align); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// checkExact checks that a copy with the original's offsets has the original's
// header size (so the padding copied from it still fits) and valid offsets.
func (p *plan) checkExact(b *Builder, align int64) error {
	x := b.exact
	if int64(len(p.header)) != x.headerSize {
		return fmt.Errorf("gguf: exact copy: header encodes to %d bytes, the original has %d; metadata or tensor infos were changed: use File.Builder", len(p.header), x.headerSize)
	}
	p.end = x.size
	if len(b.Tensors) == 0 {
		return nil
	}
	slices.SortFunc(p.order, func(i, j int) int { return cmp.Compare(p.offsets[i], p.offsets[j]) })
	prevEnd := int64(0)
	for _, i := range p.order {
		t, off := b.Tensors[i], p.offsets[i]
		if off%align != 0 || off < prevEnd || off > x.size-p.dataOffset || p.sizes[i] > x.size-p.dataOffset-off {
			return fmt.Errorf("gguf: exact copy: %s: offset %d is misaligned, overlapping or out of the file", tensorCtx(t.Name), off)
		}
		prevEnd = off + p.sizes[i]
	}
	return nil
}

// WriteTo writes the file to w (not atomically; see WriteFile) and returns the
// number of bytes written.
func (b *Builder) WriteTo(w io.Writer) (int64, error) {
	p, err := b.plan()
	if err != nil {
		return 0, err
	}
	return b.write(w, p)
}

var _ io.WriterTo = (*Builder)(nil)

// write writes a planned file.
func (b *Builder) write(w io.Writer, p *plan) (int64, error) {
	// The buffer batches the header and small tensors; large tensor writes
	// pass straight through it. Small files get a small one.
	cw := &countingWriter{w: bufio.NewWriterSize(w, int(min(max(p.end, 4<<10), 256<<10)))}
	bw := cw.w.(*bufio.Writer)
	if _, err := cw.Write(p.header); err != nil {
		return cw.n, fmt.Errorf("gguf: writing header: %w", err)
	}
	for _, i := range p.order {
		t := b.Tensors[i]
		start := p.dataOffset + p.offsets[i]
		if err := b.fill(cw, start); err != nil {
			return cw.n, err
		}
		tw := &tensorWriter{w: cw, want: p.sizes[i]}
		if err := t.Data(tw); err != nil {
			return cw.n, fmt.Errorf("gguf: %s: writing data: %w", tensorCtx(t.Name), err)
		}
		if tw.got != tw.want || tw.over {
			return cw.n, fmt.Errorf("gguf: %s: data function wrote %s bytes, want %d (%v %s): %w",
				tensorCtx(t.Name), tw.count(), tw.want, t.Dims, t.Type, ErrSizeMismatch)
		}
	}
	if err := b.fill(cw, p.end); err != nil {
		return cw.n, err
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("gguf: %w", err)
	}
	return cw.n, nil
}

// fill writes the bytes from the current position up to end that belong to no
// tensor: zeros, or for an exact copy the original file's bytes.
func (b *Builder) fill(cw *countingWriter, end int64) error {
	n := end - cw.n
	if n <= 0 {
		return nil
	}
	if b.exact != nil {
		// A buffer sized to the gap: io.Copy would allocate 32 KiB for each one.
		buf := make([]byte, min(n, 32<<10))
		if _, err := io.CopyBuffer(cw, io.NewSectionReader(b.exact.src, cw.n, n), buf); err != nil {
			return fmt.Errorf("gguf: copying bytes at offset %d: %w", cw.n, err)
		}
		return nil
	}
	zeros := make([]byte, min(n, 4096))
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := cw.Write(zeros[:k]); err != nil {
			return fmt.Errorf("gguf: writing padding: %w", err)
		}
		n -= k
	}
	return nil
}

// WriteFile writes the file atomically: to a temporary file in path's
// directory, synced, then renamed over path. On failure nothing is left behind
// and an existing file at path is untouched.
func (b *Builder) WriteFile(path string) error {
	p, err := b.plan()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	renamed := false
	defer func() {
		// A flag rather than the error: this must also run when a DataFunc
		// panics, so that no temporary file survives it.
		if !renamed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = b.write(tmp, p); err != nil {
		return fmt.Errorf("%w (writing %s)", err, path)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	// Sync before rename: otherwise a crash can leave path naming a file whose
	// data never reached the disk.
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	renamed = true
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir makes a rename durable. It is best effort: some systems cannot sync
// a directory, and the file itself is already complete.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

// countingWriter counts the bytes written, which is the file position.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// tensorWriter passes on at most want bytes and refuses more, so a DataFunc
// that writes too much fails before it spills into the next tensor.
type tensorWriter struct {
	w         io.Writer
	want, got int64
	over      bool
}

func (t *tensorWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > t.want-t.got {
		t.over = true
		return 0, fmt.Errorf("data longer than %d bytes: %w", t.want, ErrSizeMismatch)
	}
	n, err := t.w.Write(p)
	t.got += int64(n)
	return n, err
}

func (t *tensorWriter) count() string {
	if t.over {
		return fmt.Sprintf("more than %d", t.want)
	}
	return fmt.Sprint(t.got)
}
