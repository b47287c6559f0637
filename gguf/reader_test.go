package gguf

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
)

// ggufsUnder returns every *.gguf file under dir (recursively), or none when
// dir is absent.
func ggufsUnder(t *testing.T, dir string) []string {
	t.Helper()
	if _, err := os.Stat(dir); err != nil {
		t.Logf("%s absent: skipping its files", dir)
		return nil
	}
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && filepath.Ext(p) == ".gguf" {
			out = append(out, p)
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestRoundTripFixtures reads every GGUF made by other tools and writes it back:
// the exact copy must be byte-identical, and so must a fresh layout from
// File.Builder, which shows the writer lays files out as llama.cpp's converter does.
// The files are every *.gguf in llama.cpp's models/ and, found by walking,
// everywhere under the repository's testdata/, so a file added there is covered
// without editing this test.
func TestRoundTripFixtures(t *testing.T) {
	var files []string
	if _, err := os.Stat(vocabDir); err != nil {
		t.Logf("%s absent (llama.cpp not fetched: run third_party/fetch.sh): skipping vocab files", vocabDir)
	} else {
		vocab, err := filepath.Glob(filepath.Join(vocabDir, "*.gguf"))
		require.NoError(t, err)
		require.NotEmpty(t, vocab, "no *.gguf in %s", vocabDir)
		files = append(files, vocab...)
	}
	committed := ggufsUnder(t, testenv.TestdataDir())
	if _, err := os.Stat(storiesPath); err == nil {
		require.Contains(t, committed, filepath.Clean(storiesPath), "the walk must find the known committed model")
	}
	files = append(files, committed...)
	if len(files) == 0 {
		t.Skip("no GGUF fixtures present (need third_party/llama.cpp/models or testdata/)")
	}
	t.Logf("round-tripping %d GGUF files", len(files))

	out := t.TempDir()
	for _, src := range files {
		t.Run(filepath.Base(src), func(t *testing.T) {
			want := sha256File(t, src)
			sumOf := func(w io.WriterTo) string {
				h := sha256.New()
				_, err := w.WriteTo(h)
				require.NoError(t, err)
				return hex.EncodeToString(h.Sum(nil))
			}
			f, err := Open(src)
			require.NoError(t, err)
			defer f.Close()

			assert.Equal(t, want, sumOf(f), "exact copy differs")
			assert.Equal(t, want, sumOf(f.Builder()), "canonical rebuild differs")

			copied := filepath.Join(out, "copied.gguf")
			require.NoError(t, CopyFile(copied, src))
			assert.Equal(t, want, sha256File(t, copied), "CopyFile differs")

			// Parse through an io.ReaderAt sees the same file.
			fh, err := os.Open(src)
			require.NoError(t, err)
			defer fh.Close()
			p, err := Parse(fh, f.Size)
			require.NoError(t, err)
			assert.Equal(t, f.Meta.Keys(), p.Meta.Keys())
			assert.Equal(t, f.Tensors, p.Tensors)
			assert.Equal(t, f.DataOffset, p.DataOffset)
			assert.Equal(t, want, sumOf(p), "WriteTo from Parse differs")
		})
	}
}

// TestTinyLlamaFixture checks the facts in testdata/README.md for a
// file converted by llama.cpp's Python converter.
func TestTinyLlamaFixture(t *testing.T) {
	path := requireFile(t, tinyLlamaPath)
	require.Equal(t, "81f226c62d28ed4a1a9b9fa080fcd9f0cc40e0f9d5680036583ff98fbcd035cb", sha256File(t, path))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()

	assert.Equal(t, uint32(3), f.Version)
	assert.Equal(t, 18, f.Meta.Len())
	assert.False(t, f.Meta.Has(KeyAlignment))
	assert.Equal(t, int64(32), f.Alignment)
	assert.Equal(t, int64(724416), f.DataOffset)
	assert.Equal(t, int64(1750560), f.Size)
	require.Len(t, f.Tensors, 12)
	last := f.Tensors[len(f.Tensors)-1]
	lastSize, err := last.Size()
	require.NoError(t, err)
	assert.Equal(t, f.Size, f.DataOffset+last.Offset+lastSize, "data ends exactly at end of file")

	str := func(k string) string { v, err := f.Meta.String(k); require.NoError(t, err); return v }
	u32 := func(k string) uint32 { v, err := f.Meta.Uint32(k); require.NoError(t, err); return v }
	assert.Equal(t, "llama", str("general.architecture"))
	assert.Equal(t, uint32(1), u32("general.file_type"))
	assert.Equal(t, uint32(8), u32("llama.embedding_length"))
	assert.Equal(t, uint32(1), u32("llama.block_count"))
	assert.Equal(t, uint32(32), u32("llama.feed_forward_length"))
	assert.Equal(t, uint32(2), u32("llama.attention.head_count"))
	assert.Equal(t, uint32(2), u32("llama.attention.head_count_kv"))
	assert.Equal(t, uint32(4), u32("llama.rope.dimension_count"))
	assert.Equal(t, uint32(4096), u32("llama.context_length"))
	eps, err := f.Meta.Float32("llama.attention.layer_norm_rms_epsilon")
	require.NoError(t, err)
	assert.InDelta(t, 1e-5, eps, 1e-12)
	assert.Equal(t, "llama", str("tokenizer.ggml.model"))
	assert.Equal(t, uint32(1), u32("tokenizer.ggml.bos_token_id"))
	assert.Equal(t, uint32(2), u32("tokenizer.ggml.eos_token_id"))
	assert.Equal(t, uint32(0), u32("tokenizer.ggml.unknown_token_id"))
	tokens, err := f.Meta.Strings("tokenizer.ggml.tokens")
	require.NoError(t, err)
	assert.Len(t, tokens, 32000)
	assert.Equal(t, []string{"<unk>", "<s>", "</s>"}, tokens[:3])
	scores, err := f.Meta.Float32s("tokenizer.ggml.scores")
	require.NoError(t, err)
	assert.Len(t, scores, 32000)
	types, err := f.Meta.Int32s("tokenizer.ggml.token_type")
	require.NoError(t, err)
	assert.Len(t, types, 32000)

	want := map[string]struct {
		dims []int64
		typ  Type
	}{
		"token_embd.weight":        {[]int64{8, 32000}, TypeF16},
		"output.weight":            {[]int64{8, 32000}, TypeF16},
		"blk.0.attn_q.weight":      {[]int64{8, 8}, TypeF16},
		"blk.0.attn_k.weight":      {[]int64{8, 8}, TypeF16},
		"blk.0.attn_v.weight":      {[]int64{8, 8}, TypeF16},
		"blk.0.attn_output.weight": {[]int64{8, 8}, TypeF16},
		"blk.0.ffn_gate.weight":    {[]int64{8, 32}, TypeF16},
		"blk.0.ffn_up.weight":      {[]int64{8, 32}, TypeF16},
		"blk.0.ffn_down.weight":    {[]int64{32, 8}, TypeF16},
		"blk.0.attn_norm.weight":   {[]int64{8}, TypeF32},
		"blk.0.ffn_norm.weight":    {[]int64{8}, TypeF32},
		"output_norm.weight":       {[]int64{8}, TypeF32},
	}
	for name, w := range want {
		ti, ok := f.Tensor(name)
		if !assert.True(t, ok, name) {
			continue
		}
		assert.Equal(t, w.dims, ti.Dims, name)
		assert.Equal(t, w.typ, ti.Type, name)
		data, err := f.Data(name)
		require.NoError(t, err)
		size, err := ti.Size()
		require.NoError(t, err)
		assert.Len(t, data, int(size), name)
		r, err := f.Reader(name)
		require.NoError(t, err)
		viaReader, err := io.ReadAll(r)
		require.NoError(t, err)
		assert.Equal(t, data, viaReader, name)
	}
}

func TestFileDataAndClose(t *testing.T) {
	b := sampleBytes(t)
	path := writeTemp(t, "sample.gguf", b)
	f, err := Open(path)
	require.NoError(t, err)

	want := sampleBuilder(t)
	for _, tt := range want.Tensors {
		var buf bytes.Buffer
		require.NoError(t, tt.Data(&buf))
		got, err := f.Data(tt.Name)
		require.NoError(t, err)
		assert.Equal(t, buf.Bytes(), got, tt.Name)
		info, ok := f.Tensor(tt.Name)
		require.True(t, ok)
		assert.Equal(t, tt.Dims, info.Dims)
		assert.Equal(t, int64(0), info.Offset%f.Alignment)
	}
	_, err = f.Data("missing")
	assert.ErrorIs(t, err, ErrNoTensor)
	assert.ErrorContains(t, err, `sample.gguf: tensor "missing"`)

	r, err := f.Reader("output_norm.weight")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, f.Close(), "Close is idempotent")
	var nilFile *File
	require.NoError(t, nilFile.Close())

	_, err = f.Data("output_norm.weight")
	assert.ErrorIs(t, err, ErrClosed)
	_, err = f.Reader("output_norm.weight")
	assert.ErrorIs(t, err, ErrClosed)
	_, err = r.Read(make([]byte, 4))
	assert.ErrorIs(t, err, ErrClosed, "a reader taken before Close must not touch the unmapped memory")
	_, err = f.WriteTo(io.Discard)
	assert.ErrorIs(t, err, ErrClosed)
}

func TestParseReaderAtHasNoViews(t *testing.T) {
	b := sampleBytes(t)
	f, err := Parse(bytes.NewReader(b), int64(len(b)))
	require.NoError(t, err)
	_, err = f.Data("scalar")
	assert.ErrorIs(t, err, ErrNotMapped)
	r, err := f.Reader("scalar")
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Len(t, got, 4)

	g, err := ParseBytes(b)
	require.NoError(t, err)
	view, err := g.Data("scalar")
	require.NoError(t, err)
	assert.Equal(t, got, view)
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "absent.gguf"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = Open(t.TempDir())
	assert.ErrorContains(t, err, "not a regular file")

	path := writeTemp(t, "empty.gguf", nil)
	_, err = Open(path)
	assert.ErrorIs(t, err, ErrMalformed)
	assert.ErrorContains(t, err, "empty.gguf: header: magic")

	b := sampleBytes(t)
	path = writeTemp(t, "cut.gguf", b[:len(b)-40])
	_, err = Open(path)
	var fe *FormatError
	require.True(t, errors.As(err, &fe), "%v", err)
	assert.Equal(t, path, fe.File)
	assert.Contains(t, err.Error(), `tensor "scalar"`)
}

func TestParseVersion2(t *testing.T) {
	b := sampleBuilder(t)
	b.Version = 2
	var buf bytes.Buffer
	_, err := b.WriteTo(&buf)
	require.NoError(t, err)
	f, err := ParseBytes(buf.Bytes())
	require.NoError(t, err)
	assert.Equal(t, uint32(2), f.Version)
	var out bytes.Buffer
	_, err = f.WriteTo(&out)
	require.NoError(t, err)
	assert.Equal(t, buf.Bytes(), out.Bytes())
}

// TestExactCopyKeepsOddLayout: a file whose tensors are stored out of info
// order, with non-zero padding, gaps and trailing bytes, still copies exactly.
func TestExactCopyKeepsOddLayout(t *testing.T) {
	r := newRaw(3, 2, 1).kvU32("general.alignment", 16)
	r.tensor("a", TypeF32, 64, 4).tensor("b", TypeF16, 0, 8)
	for len(r.b)%16 != 0 {
		r.u8(0xAA) // non-zero header padding
	}
	for i := range 100 {
		r.u8(byte(i)) // b at 0 (16 bytes), a gap, a at 64 (16 bytes), trailing data
	}
	f, err := ParseBytes(r.b)
	require.NoError(t, err)
	assert.Equal(t, int64(16), f.Alignment)
	var out bytes.Buffer
	_, err = f.WriteTo(&out)
	require.NoError(t, err)
	assert.Equal(t, r.b, out.Bytes())

	// A fresh layout packs them in info order with zero padding instead.
	out.Reset()
	_, err = f.Builder().WriteTo(&out)
	require.NoError(t, err)
	g, err := ParseBytes(out.Bytes())
	require.NoError(t, err)
	assert.Equal(t, int64(0), g.Tensors[0].Offset)
	assert.Equal(t, int64(16), g.Tensors[1].Offset)
	for _, name := range []string{"a", "b"} {
		want, _ := f.Data(name)
		got, _ := g.Data(name)
		assert.Equal(t, want, got, name)
	}

	// Changing metadata breaks the exact layout: that needs Builder.
	f.Meta.Set("general.name", ValueOf("x"))
	_, err = f.WriteTo(io.Discard)
	assert.ErrorContains(t, err, "use File.Builder")
}
