//go:build cgo

package bindings

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLoadModelRejectsBadFiles feeds LoadModel truncated copies of a real model and files
// that are not GGUF at all; each must come back as an error naming the file, never a crash.
func TestLoadModelRejectsBadFiles(t *testing.T) {
	requireStories(t)
	good, err := os.ReadFile(storiesPath)
	require.NoError(t, err)
	h, err := parseGGUFHeader(bytes.NewReader(good), int64(len(good)))
	require.NoError(t, err)
	last := h.tensors[len(h.tensors)-1]
	dataEnd := h.dataStart + int64(last.offset+last.nbytes)
	dir := t.TempDir()

	type badFile struct {
		name string
		data []byte
	}
	var cases []badFile
	for _, n := range []int64{0, 3, 4, 7, 8, 16, 23, 24, 100, 1000, h.dataStart - 1, h.dataStart, h.dataStart + 100, int64(len(good)) / 2, dataEnd - 1} {
		cases = append(cases, badFile{name: "truncated", data: good[:n]})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var hugeCount bytes.Buffer
	hugeCount.WriteString("GGUF")
	binary.Write(&hugeCount, binary.LittleEndian, uint32(3))
	binary.Write(&hugeCount, binary.LittleEndian, []uint64{1 << 60, 1 << 60})
	badVersion := append([]byte("GGUF"), 9, 0, 0, 0)
	badVersion = append(badVersion, good[8:]...)
	corrupt := bytes.Clone(good)
	copy(corrupt[24:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}) // first key length
	cases = append(cases,
		badFile{"empty", nil},
		badFile{"text", []byte("Once upon a time, this was not a model.\n")},
		badFile{"random", random},
		badFile{"magic-then-random", append([]byte("GGUF"), random...)},
		badFile{"huge-counts", hugeCount.Bytes()},
		badFile{"future-version", badVersion},
		badFile{"corrupt-key-length", corrupt},
	)

	for i, tc := range cases {
		path := filepath.Join(dir, tc.name+"-"+string(rune('a'+i))+".gguf")
		require.NoError(t, os.WriteFile(path, tc.data, 0o644))
		m, err := LoadModel(path, ModelOptions{})
		if !assert.Error(t, err, "%s (%d bytes) loaded", tc.name, len(tc.data)) {
			m.Close()
			continue
		}
		assert.ErrorContains(t, err, path, "the error names the file")
		assert.ErrorIs(t, err, ErrInvalidGGUF, "%s (%d bytes)", tc.name, len(tc.data))
	}

	// The untruncated file passes the same check; a missing file and a directory fail.
	_, err = readGGUFHeader(storiesPath)
	assert.NoError(t, err)
	_, err = LoadModel(filepath.Join(dir, "missing.gguf"), ModelOptions{})
	assert.ErrorContains(t, err, "missing.gguf")
	_, err = LoadModel(dir, ModelOptions{})
	assert.ErrorContains(t, err, dir)

	// An adapter is a GGUF but not a model.
	adapter := filepath.Join(dir, "adapter.gguf")
	writeGGUF(t, adapter, []ggufKV{{"general.type", "adapter"}}, nil)
	_, err = LoadModel(adapter, ModelOptions{})
	assert.ErrorContains(t, err, "general.architecture")
}

// TestHeaderChecks covers header rules gguf.cpp enforces that a truncation cannot reach.
func TestHeaderChecks(t *testing.T) {
	dir := t.TempDir()
	f32 := func(name string, ne ...int64) ggufF32 {
		n := int64(1)
		for _, d := range ne {
			n *= d
		}
		return ggufF32{name: name, ne: ne, data: make([]float32, n)}
	}
	write := func(kvs []ggufKV, tensors ...ggufF32) string {
		path := filepath.Join(dir, "h.gguf")
		writeGGUF(t, path, kvs, tensors)
		return path
	}

	_, err := readGGUFHeader(write([]ggufKV{{"general.architecture", "llama"}}, f32("a", 4, 2)))
	require.NoError(t, err)

	_, err = readGGUFHeader(write([]ggufKV{{"general.alignment", uint32(3)}}))
	assert.ErrorContains(t, err, "power of 2")

	bad := f32("a", 4, 2)
	bad.typ = 200
	_, err = readGGUFHeader(write(nil, bad))
	assert.ErrorContains(t, err, "unknown ggml type")

	bad.typ = 4 // GGML_TYPE_Q4_2, removed from ggml
	_, err = readGGUFHeader(write(nil, bad))
	assert.ErrorContains(t, err, "removed ggml type")

	bad.typ = 8 // GGML_TYPE_Q8_0: rows of 4 are not whole blocks of 32
	_, err = readGGUFHeader(write(nil, bad))
	assert.ErrorContains(t, err, "block size")

	shifted := f32("b", 3)
	shifted.offsetShift = 32
	_, err = readGGUFHeader(write(nil, f32("a", 4, 2), shifted))
	assert.ErrorContains(t, err, "data offset")

	beyond := f32("a", 4, 2)
	beyond.ne = []int64{4, 2000} // claims far more data than the file holds
	beyond.data = make([]float32, 8000)
	path := write(nil, beyond)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b[:len(b)-100], 0o644))
	_, err = readGGUFHeader(path)
	assert.ErrorContains(t, err, "truncated")

	long := make([]byte, 64)
	for i := range long {
		long[i] = 'x'
	}
	_, err = readGGUFHeader(write(nil, f32(string(long), 1)))
	assert.ErrorContains(t, err, "name")
}
