package onnx_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/export/onnx"
	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/gguf"
)

// writeModel writes a small random model of spec after letting edit change
// its tensors, and returns its path.
func writeModel(t *testing.T, spec factory.Spec, edit func(b *gguf.Builder)) string {
	t.Helper()
	spec.VocabSize, spec.Seed = 64, 1
	b, err := factory.Build(spec)
	require.NoError(t, err)
	if edit != nil {
		edit(b)
	}
	path := filepath.Join(t.TempDir(), "model.gguf")
	require.NoError(t, b.WriteFile(path))
	return path
}

// TestExportErrors: bad inputs give errors naming the file and the problem, never a panic.
func TestExportErrors(t *testing.T) {
	llama := factory.Spec{Arch: "llama", Embd: 32, Layers: 2, Heads: 2, FF: 64}
	dir := t.TempDir()
	notGGUF := filepath.Join(dir, "model.onnx")
	require.NoError(t, os.WriteFile(notGGUF, []byte("\x08\x08this is not a GGUF file at all"), 0o644))
	adapter := filepath.Join(dir, "adapter.gguf")
	meta := &gguf.Metadata{}
	meta.Set("general.architecture", gguf.ValueOf("llama"))
	meta.Set("general.type", gguf.ValueOf("adapter"))
	require.NoError(t, (&gguf.Builder{Meta: meta}).WriteFile(adapter))

	cases := []struct {
		name  string
		model string
		opts  onnx.Options
		want  []string
		is    error
	}{
		{"not gguf", notGGUF, onnx.Options{}, []string{notGGUF}, gguf.ErrMalformed},
		{"missing file", filepath.Join(dir, "nope.gguf"), onnx.Options{}, []string{"nope.gguf"}, os.ErrNotExist},
		{"adapter", adapter, onnx.Options{}, []string{adapter, "adapter", "ecotune merge"}, nil},
		{"phi2", writeModel(t, factory.Spec{Arch: "phi2", Embd: 32, Layers: 1, Heads: 2, FF: 64}, nil), onnx.Options{},
			[]string{`architecture "phi2"`, "llama, qwen2"}, onnx.ErrUnsupported},
		{"missing tensor", writeModel(t, llama, func(b *gguf.Builder) {
			b.Tensors = deleteTensor(b.Tensors, "blk.1.ffn_up.weight")
		}), onnx.Options{}, []string{"blk.1.ffn_up.weight", "missing"}, nil},
		{"unknown tensor", writeModel(t, llama, func(b *gguf.Builder) {
			b.Tensors = append(b.Tensors, gguf.Tensor{TensorInfo: gguf.TensorInfo{Name: "blk.0.attn_q_norm.weight", Dims: []int64{16}, Type: gguf.TypeF32},
				Data: gguf.DataBytes(make([]byte, 64))})
		}), onnx.Options{}, []string{"blk.0.attn_q_norm.weight", "not part of the llama layout"}, onnx.ErrUnsupported},
		{"qwen2 has no output projection bias", writeModel(t, factory.Spec{Arch: "qwen2", Embd: 32, Layers: 1, Heads: 2, FF: 64}, func(b *gguf.Builder) {
			b.Tensors = append(b.Tensors, gguf.Tensor{TensorInfo: gguf.TensorInfo{Name: "blk.0.attn_output.bias", Dims: []int64{32}, Type: gguf.TypeF32},
				Data: gguf.DataBytes(make([]byte, 128))})
		}), onnx.Options{}, []string{"blk.0.attn_output.bias"}, onnx.ErrUnsupported},
		{"wrong shape", writeModel(t, llama, func(b *gguf.Builder) {
			for i := range b.Tensors {
				if b.Tensors[i].Name == "blk.0.attn_norm.weight" {
					b.Tensors[i].TensorInfo.Dims = []int64{16}
					b.Tensors[i].Data = gguf.DataBytes(make([]byte, 64))
				}
			}
		}), onnx.Options{}, []string{"blk.0.attn_norm.weight", "[16]", "want [32]"}, nil},
		{"bad output directory", writeModel(t, llama, nil), onnx.Options{Out: filepath.Join(dir, "no", "such", "dir", "m.onnx")},
			[]string{"no/such/dir"}, os.ErrNotExist},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := c.opts
			opts.Model = c.model
			if opts.Out == "" {
				opts.Out = filepath.Join(t.TempDir(), "model.onnx")
			}
			_, err := onnx.Export(context.Background(), opts)
			require.Error(t, err)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
			if c.is != nil {
				assert.True(t, errors.Is(err, c.is), "%v is not %v", err, c.is)
			}
			assert.NoFileExists(t, opts.Out)
		})
	}
}

// deleteTensor returns ts without the named tensor.
func deleteTensor(ts []gguf.Tensor, name string) []gguf.Tensor {
	var out []gguf.Tensor
	for _, tt := range ts {
		if tt.Name != name {
			out = append(out, tt)
		}
	}
	return out
}
