package safetensors

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Tensor is one tensor to write.
type Tensor struct {
	Name  string
	DType DType
	Shape []int64 // row-major, as PyTorch
	Data  []byte  // little-endian; len = product(Shape)·DType.Size()
	// Stream, when Data is nil, writes the tensor's bytes instead, one tensor at a time
	// while the file is written, so a file larger than memory can be written.
	Stream func(w io.Writer) error
}

// size is the tensor's byte count from its shape and type.
func (t Tensor) size() int64 {
	n := t.DType.Size()
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// layout orders tensors as Hugging Face's writer does, by element size
// (largest first) and then name, so each tensor's offset is a multiple of its
// element size once the header is padded to 8 bytes.
func layout(tensors []Tensor) ([]Tensor, error) {
	out := slices.Clone(tensors)
	seen := map[string]bool{}
	for _, t := range out {
		if t.Name == "" || t.Name == metadataKey {
			return nil, fmt.Errorf("safetensors: invalid tensor name %q", t.Name)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("safetensors: tensor %q: duplicate name", t.Name)
		}
		seen[t.Name] = true
		if !t.DType.Valid() {
			return nil, fmt.Errorf("safetensors: tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		for _, d := range t.Shape {
			if d < 0 {
				return nil, fmt.Errorf("safetensors: tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
		}
		if t.Stream == nil && int64(len(t.Data)) != t.size() {
			return nil, fmt.Errorf("safetensors: tensor %q: %d data bytes, shape %v of %s needs %d", t.Name, len(t.Data), t.Shape, t.DType, t.size())
		}
	}
	slices.SortFunc(out, func(a, b Tensor) int {
		if c := cmp.Compare(b.DType.Size(), a.DType.Size()); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out, nil
}

// header encodes the JSON header (metadata first, then tensors in data order),
// padded with spaces to a multiple of 8 bytes.
func header(tensors []Tensor, meta map[string]string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			b.WriteByte(',')
		}
		first = false
	}
	if len(meta) > 0 {
		sep()
		m, _ := json.Marshal(meta) // map keys are sorted: deterministic
		b.WriteString(`"` + metadataKey + `":`)
		b.Write(m)
	}
	var off int64
	for _, t := range tensors {
		sep()
		name, _ := json.Marshal(t.Name)
		b.Write(name)
		b.WriteString(`:{"dtype":"` + string(t.DType) + `","shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(d, 10))
		}
		end := off + t.size()
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes()
}

// Write writes a safetensors file with the given tensors and metadata to w.
func Write(w io.Writer, tensors []Tensor, meta map[string]string) error {
	ts, err := layout(tensors)
	if err != nil {
		return err
	}
	h := header(ts, meta)
	bw := bufio.NewWriterSize(w, 1<<20)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(h)))
	bw.Write(n[:])
	bw.Write(h)
	for _, t := range ts {
		if t.Stream == nil {
			bw.Write(t.Data)
			continue
		}
		cw := &countingWriter{w: bw}
		if err := t.Stream(cw); err != nil {
			return fmt.Errorf("safetensors: tensor %q: %w", t.Name, err)
		}
		if cw.n != t.size() {
			return fmt.Errorf("safetensors: tensor %q: wrote %d bytes, shape %v of %s needs %d", t.Name, cw.n, t.Shape, t.DType, t.size())
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// WriteFile writes a safetensors file atomically: to a temporary file in the
// same directory, synced, then renamed over path.
func WriteFile(path string, tensors []Tensor, meta map[string]string) (err error) {
	if _, err := layout(tensors); err != nil {
		return fmt.Errorf("%w (writing %s)", err, path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = Write(tmp, tensors, meta); err != nil {
		return fmt.Errorf("%w (writing %s)", err, path)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// countingWriter counts what a tensor's Stream writes, to hold it to the tensor's size.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
