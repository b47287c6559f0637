package gguf

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dirNames lists a directory.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteMetadataEveryTypeRoundTrips(t *testing.T) {
	want := allValues(t)
	path := filepath.Join(t.TempDir(), "meta.gguf")
	require.NoError(t, (&Builder{Meta: want}).WriteFile(path))

	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, want.Keys(), f.Meta.Keys(), "key order is kept")
	for key, v := range want.All() {
		got, ok := f.Meta.Get(key)
		require.True(t, ok, key)
		assert.Equal(t, v, got, key)
	}
	assert.Empty(t, f.Tensors)
	assert.Equal(t, f.Size, f.HeaderSize, "a file without tensors ends after its header")
}

func TestWriteTensorsRoundTrip(t *testing.T) {
	b := sampleBuilder(t)
	b.Meta.Set(KeyAlignment, ValueOf(uint32(64)))
	path := filepath.Join(t.TempDir(), "model.gguf")
	require.NoError(t, b.WriteFile(path))

	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, uint32(Version), f.Version)
	assert.Equal(t, int64(64), f.Alignment)
	assert.Zero(t, f.DataOffset%64)
	require.Len(t, f.Tensors, len(b.Tensors))
	end := int64(0)
	for i, want := range b.Tensors {
		got := f.Tensors[i]
		assert.Equal(t, want.Name, got.Name, "tensor order is kept")
		assert.Equal(t, want.Dims, got.Dims)
		assert.Equal(t, want.Type, got.Type)
		assert.Zero(t, got.Offset%64, got.Name)
		assert.GreaterOrEqual(t, got.Offset, end, "tensors are laid out in order")
		var buf bytes.Buffer
		require.NoError(t, want.Data(&buf))
		data, err := f.Data(got.Name)
		require.NoError(t, err)
		assert.Equal(t, buf.Bytes(), data, got.Name)
		end = got.Offset + int64(len(data))
	}
	assert.Equal(t, f.Size, f.DataOffset+end+(64-end%64)%64, "the last tensor is padded too")

	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), info.Mode().Perm())
}

func TestWriteIsDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	_, err := sampleBuilder(t).WriteTo(&a)
	require.NoError(t, err)
	_, err = sampleBuilder(t).WriteTo(&b)
	require.NoError(t, err)
	assert.Equal(t, a.Bytes(), b.Bytes())

	// Key order is part of the output: a different order is a different file.
	m := sampleBuilder(t)
	v, _ := m.Meta.Get("u8")
	m.Meta.Delete("u8")
	m.Meta.Set("u8", v)
	var c bytes.Buffer
	_, err = m.WriteTo(&c)
	require.NoError(t, err)
	assert.NotEqual(t, a.Bytes(), c.Bytes())
	assert.Equal(t, a.Len(), c.Len())
}

// TestWriteFileAtomic: a failing tensor leaves the old file as it was and no
// temporary file behind, whether the DataFunc returns an error or panics.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.gguf")
	old := []byte("the previous model")
	require.NoError(t, os.WriteFile(path, old, 0o644))

	boom := errors.New("boom")
	b := sampleBuilder(t)
	b.Tensors[2].Data = func(w io.Writer) error {
		_, _ = w.Write([]byte{1, 2, 3})
		return boom
	}
	err := b.WriteFile(path)
	assert.ErrorIs(t, err, boom)
	assert.ErrorContains(t, err, `tensor "blk.0.ffn_up.weight"`)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, old, got, "the existing file is untouched")
	assert.Equal(t, []string{"model.gguf"}, dirNames(t, dir), "no temporary file is left")

	b.Tensors[2].Data = func(io.Writer) error { panic("tensor source crashed") }
	assert.PanicsWithValue(t, "tensor source crashed", func() { _ = b.WriteFile(path) })
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, old, got)
	assert.Equal(t, []string{"model.gguf"}, dirNames(t, dir))

	// A new file that fails is never created.
	fresh := filepath.Join(dir, "fresh.gguf")
	b.Tensors[2].Data = func(io.Writer) error { return boom }
	require.Error(t, b.WriteFile(fresh))
	assert.NoFileExists(t, fresh)

	// And success replaces the old file.
	require.NoError(t, sampleBuilder(t).WriteFile(path))
	f, err := Open(path)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	assert.Equal(t, []string{"fresh.gguf", "model.gguf"}[1:], dirNames(t, dir))
}

func TestWriteByteCountMismatch(t *testing.T) {
	for _, c := range []struct {
		name string
		data DataFunc
		want string
	}{
		{"short", DataBytes(make([]byte, 19)), "data function wrote 19 bytes, want 20"},
		{"long", DataBytes(make([]byte, 21)), "data longer than 20 bytes"},
		{"long in pieces", func(w io.Writer) error {
			for range 3 {
				if _, err := w.Write(make([]byte, 8)); err != nil {
					return err
				}
			}
			return nil
		}, "data longer than 20 bytes"},
		{"long ignoring errors", func(w io.Writer) error {
			_, _ = w.Write(make([]byte, 30))
			return nil
		}, "wrote more than 20 bytes"},
		{"reader", DataReader(bytes.NewReader(make([]byte, 7))), "wrote 7 bytes, want 20"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			b := sampleBuilder(t)
			b.Tensors[3].Data = c.data // output_norm.weight: 5 × f32
			err := b.WriteFile(filepath.Join(dir, "m.gguf"))
			assert.ErrorIs(t, err, ErrSizeMismatch)
			assert.ErrorContains(t, err, `tensor "output_norm.weight"`)
			assert.ErrorContains(t, err, c.want)
			assert.Empty(t, dirNames(t, dir))
		})
	}
}

func TestBuilderRejectsInvalidInput(t *testing.T) {
	for _, c := range []struct {
		name   string
		modify func(b *Builder)
		want   string
	}{
		{"zero value", func(b *Builder) { b.Meta.Set("bad", Value{}) }, `key "bad": invalid value`},
		{"empty key", func(b *Builder) { b.Meta.Set("", ValueOf(1.0)) }, "empty metadata key"},
		{"alignment type", func(b *Builder) { b.Meta.Set(KeyAlignment, ValueOf(int32(32))) }, "is i32, want u32"},
		{"alignment value", func(b *Builder) { b.Meta.Set(KeyAlignment, ValueOf(uint32(24))) }, "not a power of two"},
		{"version", func(b *Builder) { b.Version = 1 }, "cannot write version 1"},
		{"duplicate tensor", func(b *Builder) { b.Tensors[1].Name = b.Tensors[0].Name }, "duplicate tensor name"},
		{"bad dims", func(b *Builder) { b.Tensors[0].Dims = []int64{8, -1} }, "dimension 1 is -1"},
		{"bad block", func(b *Builder) { b.Tensors[1].Dims = []int64{16} }, "not a multiple of the q4_0 block size"},
		{"unknown type", func(b *Builder) { b.Tensors[0].Type = 5 }, "unknown tensor type 5"},
		{"no data", func(b *Builder) { b.Tensors[0].Data = nil }, "no Data function"},
		{"too deep", func(b *Builder) {
			v := ArrayOf([]uint8{1})
			for range MaxArrayDepth {
				v = Value{typ: ValueArray, elem: ValueArray, x: []Value{v}}
			}
			b.Meta.Set("deep", v)
		}, "nested deeper than 8"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			b := sampleBuilder(t)
			c.modify(b)
			err := b.WriteFile(filepath.Join(dir, "m.gguf"))
			assert.ErrorContains(t, err, c.want)
			assert.Empty(t, dirNames(t, dir), "nothing is created for invalid input")
		})
	}
}

// TestBuilderFromFile derives a new file from an existing one, as the quantizer
// and the merger do: change metadata, drop a tensor, add one.
func TestBuilderFromFile(t *testing.T) {
	src := writeTemp(t, "src.gguf", sampleBytes(t))
	f, err := Open(src)
	require.NoError(t, err)
	defer f.Close()

	b := f.Builder()
	b.Meta.Set("general.architecture", ValueOf("mistral"))
	b.Meta.Set("general.file_type", ValueOf(uint32(7)))
	b.Tensors = append(b.Tensors[:1], b.Tensors[2:]...)
	b.Tensors[0].Name = "renamed.weight" // data still comes from token_embd.weight
	b.Tensors = append(b.Tensors, Tensor{
		TensorInfo: TensorInfo{Name: "new", Dims: []int64{2}, Type: TypeF32},
		Data:       DataBytes(make([]byte, 8)),
	})
	dst := filepath.Join(t.TempDir(), "dst.gguf")
	require.NoError(t, b.WriteFile(dst))

	arch, err := f.Meta.String("general.architecture")
	require.NoError(t, err)
	assert.Equal(t, "llama", arch, "the source's metadata is not changed")

	g, err := Open(dst)
	require.NoError(t, err)
	defer g.Close()
	arch, err = g.Meta.String("general.architecture")
	require.NoError(t, err)
	assert.Equal(t, "mistral", arch)
	ft, err := g.Meta.Uint32("general.file_type")
	require.NoError(t, err)
	assert.Equal(t, uint32(7), ft)
	assert.Equal(t, f.Meta.Len()+1, g.Meta.Len())
	require.Len(t, g.Tensors, len(f.Tensors))
	want, err := f.Data("token_embd.weight")
	require.NoError(t, err)
	got, err := g.Data("renamed.weight")
	require.NoError(t, err)
	assert.Equal(t, want, got)
	_, ok := g.Tensor("blk.0.attn_q.weight")
	assert.False(t, ok)

	// Writing after the source is closed fails cleanly.
	require.NoError(t, f.Close())
	err = f.Builder().WriteFile(filepath.Join(t.TempDir(), "late.gguf"))
	assert.ErrorIs(t, err, ErrClosed)
}

// TestExactCopyOntoItself: File.WriteFile may replace the file it reads from,
// since the mapping keeps the old contents alive.
func TestExactCopyOntoItself(t *testing.T) {
	b := sampleBytes(t)
	path := writeTemp(t, "self.gguf", b)
	f, err := Open(path)
	require.NoError(t, err)
	require.NoError(t, f.WriteFile(path))
	require.NoError(t, f.Close())
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, b, got)
}
