package safetensors

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStreamedTensors: a tensor streamed writes the same file as the same bytes given as
// Data, and a stream that writes the wrong amount is an error naming the tensor.
func TestStreamedTensors(t *testing.T) {
	data := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	inMemory := []Tensor{{Name: "a", DType: F32, Shape: []int64{2}, Data: data}, {Name: "b", DType: U8, Shape: []int64{3}, Data: []byte{9, 8, 7}}}
	streamed := []Tensor{
		{Name: "a", DType: F32, Shape: []int64{2}, Stream: func(w io.Writer) error { _, err := w.Write(data); return err }},
		{Name: "b", DType: U8, Shape: []int64{3}, Data: []byte{9, 8, 7}},
	}
	var want, got bytes.Buffer
	require.NoError(t, Write(&want, inMemory, map[string]string{"format": "pt"}))
	require.NoError(t, Write(&got, streamed, map[string]string{"format": "pt"}))
	assert.Equal(t, want.Bytes(), got.Bytes())

	short := []Tensor{{Name: "a", DType: F32, Shape: []int64{2}, Stream: func(w io.Writer) error { _, err := w.Write(data[:4]); return err }}}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	err := WriteFile(path, short, nil)
	assert.ErrorContains(t, err, `tensor "a": wrote 4 bytes, shape [2] of F32 needs 8`)
	assert.NoFileExists(t, path)
}
