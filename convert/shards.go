package convert

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/ecotune/ecotune/internal/atomicfile"
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

// writeShard writes a safetensors file whose tensors are streamed one at a time, through
// a temporary file renamed into place once complete.
func writeShard(path string, tensors []shardTensor, meta map[string]string) error {
	ts := make([]safetensors.Tensor, len(tensors))
	for i, t := range tensors {
		ts[i] = safetensors.Tensor{Name: t.name, DType: t.dtype, Shape: t.shape, Stream: t.data}
	}
	if err := safetensors.WriteFile(path, ts, meta); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	return nil
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
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	return nil
}
