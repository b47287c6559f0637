package convert

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/ecotune/ecotune/safetensors"
)

// shardTensor is one tensor of a safetensors file being written, its data
// produced on demand.
type shardTensor struct {
	name  string
	dtype safetensors.DType
	shape []int64
	data  func(w io.Writer) error // writes exactly size() bytes
}

func (t shardTensor) size() int64 {
	n := t.dtype.Size()
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// writeShard writes a safetensors file whose tensors are streamed one at a
// time (safetensors.WriteFile needs every tensor's bytes in memory), with the
// same layout: larger elements first so each tensor is aligned to its element
// size, the header padded to 8 bytes. The file appears under path only once
// complete.
func writeShard(path string, tensors []shardTensor, meta map[string]string) (err error) {
	ts := slices.Clone(tensors)
	slices.SortStableFunc(ts, func(a, b shardTensor) int { return int(b.dtype.Size() - a.dtype.Size()) })
	var h bytes.Buffer
	h.WriteByte('{')
	if len(meta) > 0 {
		m, _ := json.Marshal(meta)
		h.WriteString(`"__metadata__":`)
		h.Write(m)
	}
	var off int64
	for i, t := range ts {
		if i > 0 || len(meta) > 0 {
			h.WriteByte(',')
		}
		name, _ := json.Marshal(t.name)
		h.Write(name)
		h.WriteString(`:{"dtype":"` + string(t.dtype) + `","shape":[`)
		for j, d := range t.shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.FormatInt(d, 10))
		}
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, off, off+t.size())
		off += t.size()
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(h.Len()))
	bw.Write(n[:])
	bw.Write(h.Bytes())
	for _, t := range ts {
		cw := &countWriter{w: bw}
		if err := t.data(cw); err != nil {
			return fmt.Errorf("convert: %s: tensor %s: %w", path, t.name, err)
		}
		if cw.n != t.size() {
			return fmt.Errorf("convert: %s: tensor %s: wrote %d bytes, its shape needs %d", path, t.name, cw.n, t.size())
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	renamed = true
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeJSONFile writes v as indented JSON through a temporary file.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("convert: %s: %w", path, err)
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// writeFileAtomic writes b to path through a temporary file in its directory.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	if _, err = tmp.Write(b); err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("convert: %w", err)
	}
	return nil
}
