package safetensors_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/hostile"
	"github.com/ecotune/ecotune/safetensors"
)

// file assembles a safetensors file from a header text and a data buffer.
func file(header string, data []byte) []byte {
	var b bytes.Buffer
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	b.Write(n[:])
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

// TestParseHandWritten reads a file assembled by hand from the format's
// description, not by our writer.
func TestParseHandWritten(t *testing.T) {
	data := safetensors.Float32Bytes([]float32{1, 2, 3, 4, 5, 6})
	data = append(data, 0x00, 0x3c, 0x00, 0xc0) // F16 1.0 and -2.0
	h := `{"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[2],"data_offsets":[24,28]},` +
		`"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}  `
	f, err := safetensors.ParseBytes(file(h, data))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"format": "pt"}, f.Metadata)
	assert.Equal(t, []string{"a", "b"}, f.Names(), "tensors in data order")
	a, ok := f.Tensor("a")
	require.True(t, ok)
	assert.Equal(t, []int64{2, 3}, a.Shape)
	x, err := f.Float32s("a")
	require.NoError(t, err)
	assert.Equal(t, []float32{1, 2, 3, 4, 5, 6}, x)
	y, err := f.Float32s("b")
	require.NoError(t, err)
	assert.Equal(t, []float32{1, -2}, y)
}

func TestWriteReadRoundTrip(t *testing.T) {
	f32 := safetensors.Float32Bytes([]float32{0.5, -1.25, float32(math.Pi), 7, 8, 9})
	tensors := []safetensors.Tensor{
		{Name: "z.f16", DType: safetensors.F16, Shape: []int64{3}, Data: []byte{1, 2, 3, 4, 5, 6}},
		{Name: "a.f32", DType: safetensors.F32, Shape: []int64{2, 3}, Data: f32},
		{Name: "m.bf16", DType: safetensors.BF16, Shape: []int64{1, 1}, Data: []byte{0x80, 0x3f}},
		{Name: "empty", DType: safetensors.F32, Shape: []int64{0, 4}, Data: nil},
	}
	meta := map[string]string{"format": "pt", "x": "y"}
	path := filepath.Join(t.TempDir(), "t.safetensors")
	require.NoError(t, safetensors.WriteFile(path, tensors, meta))
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	hlen := binary.LittleEndian.Uint64(raw)
	assert.Zero(t, hlen%8, "header padded to 8 bytes")
	assert.Equal(t, byte('{'), raw[8])

	f, err := safetensors.Open(path)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, meta, f.Metadata)
	// F32 first (largest element), then the 2-byte types by name.
	assert.Equal(t, []string{"a.f32", "empty", "m.bf16", "z.f16"}, f.Names())
	for _, want := range tensors {
		info, ok := f.Tensor(want.Name)
		require.True(t, ok, want.Name)
		assert.Equal(t, want.Shape, info.Shape, want.Name)
		assert.Equal(t, want.DType, info.DType, want.Name)
		got, err := f.Data(want.Name)
		require.NoError(t, err)
		assert.Equal(t, len(want.Data), len(got), want.Name)
		assert.True(t, bytes.Equal(want.Data, got), want.Name)
		assert.Zero(t, info.Begin%info.DType.Size(), "%s is aligned to its element size", want.Name)
	}
	bf, err := f.Float32s("m.bf16")
	require.NoError(t, err)
	assert.Equal(t, []float32{1}, bf)

	// Deterministic: the same tensors in another order give the same bytes.
	var b1, b2 bytes.Buffer
	require.NoError(t, safetensors.Write(&b1, tensors, meta))
	rev := []safetensors.Tensor{tensors[3], tensors[2], tensors[1], tensors[0]}
	require.NoError(t, safetensors.Write(&b2, rev, meta))
	assert.Equal(t, b1.Bytes(), b2.Bytes())
	assert.Equal(t, raw, b1.Bytes())
}

func TestWriteRejects(t *testing.T) {
	for name, ts := range map[string][]safetensors.Tensor{
		"size":      {{Name: "a", DType: safetensors.F32, Shape: []int64{2}, Data: make([]byte, 4)}},
		"dtype":     {{Name: "a", DType: "F7", Shape: []int64{1}, Data: make([]byte, 4)}},
		"duplicate": {{Name: "a", DType: safetensors.U8, Shape: []int64{1}, Data: []byte{1}}, {Name: "a", DType: safetensors.U8, Shape: []int64{1}, Data: []byte{1}}},
		"metaname":  {{Name: "__metadata__", DType: safetensors.U8, Shape: []int64{1}, Data: []byte{1}}},
	} {
		path := filepath.Join(t.TempDir(), "x.safetensors")
		assert.Error(t, safetensors.WriteFile(path, ts, nil), name)
		_, err := os.Stat(path)
		assert.True(t, os.IsNotExist(err), "%s: nothing written", name)
	}
}

// TestHalfToFloat32 checks every binary16 value against its definition,
// (-1)^s · 2^(e-15) · (1 + f/1024), or 2^-14 · f/1024 for subnormals.
func TestHalfToFloat32(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		s, e, fr := h>>15, (h>>10)&0x1f, h&0x3ff
		got := safetensors.HalfToFloat32(uint16(h))
		var want float64
		switch {
		case e == 0x1f && fr == 0:
			want = math.Inf(1)
		case e == 0x1f:
			assert.True(t, math.IsNaN(float64(got)), "0x%04x is NaN", h)
			continue
		case e == 0:
			want = math.Ldexp(float64(fr)/1024, -14)
		default:
			want = math.Ldexp(1+float64(fr)/1024, e-15)
		}
		if s == 1 {
			want = -want
		}
		if float64(got) != want || math.Signbit(float64(got)) != (s == 1) {
			t.Fatalf("HalfToFloat32(0x%04x) = %v, want %v", h, got, want)
		}
	}
}

// TestHostile gives malformed files; each must fail with ErrMalformed and a
// message naming the offending part, never panic.
func TestHostile(t *testing.T) {
	d8 := make([]byte, 8)
	huge := make([]byte, 8)
	binary.LittleEndian.PutUint64(huge, math.MaxUint64)
	cases := []struct {
		name, want string
		data       []byte
	}{
		{"short", "shorter than", []byte{1, 2, 3}},
		{"huge length", "header length", append(huge, '{', '}')},
		{"length past end", "header length", file(`{}`, nil)[:9]},
		{"not object", "does not start", file(`[1,2]`, nil)},
		{"bad json", `tensor "a"`, file(`{"a":`, nil)},
		{"bad json 2", "header", file(`{1:2}`, nil)},
		{"trailing", "trailing", file(`{} x`, nil)},
		{"no dtype", `"a": dtype`, file(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, d8)},
		{"unknown dtype", "unknown", file(`{"a":{"dtype":"F3","shape":[2],"data_offsets":[0,8]}}`, d8)},
		{"no shape", "shape: missing", file(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, d8)},
		{"negative dim", "dimension 0", file(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, d8)},
		{"fraction dim", "dimension 0", file(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}`, d8)},
		{"overflow shape", "overflows", file(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, d8)},
		{"size mismatch", "needs", file(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, d8)},
		{"offsets count", "data_offsets", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}`, d8)},
		{"reversed", "begin 8 is after", file(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}}`, d8)},
		{"past end", "past the 8-byte", file(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, d8)},
		{"overlap", "overlap", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, d8)},
		{"duplicate", "listed twice", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, d8)},
		{"bad metadata", "__metadata__", file(`{"__metadata__":{"k":1}}`, nil)},
		{"empty name", "empty name", file(`{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, d8)},
		{"huge offset", "data_offsets", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,99999999999999999999]}}`, d8)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := safetensors.ParseBytes(c.data)
			require.Error(t, err)
			assert.ErrorIs(t, err, safetensors.ErrMalformed)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func TestOpenNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.safetensors")
	require.NoError(t, os.WriteFile(path, file(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 8)), 0o644))
	_, err := safetensors.Open(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), `tensor "a"`)
}

// FuzzParse: no input may panic, and whatever parses must have tensors whose
// data lies inside the file and can be read.
func FuzzParse(f *testing.F) {
	f.Add(file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(file(`{"__metadata__":{"a":"b"},"x":{"dtype":"F16","shape":[1,1],"data_offsets":[0,2]}}`, make([]byte, 2)))
	f.Add(file(`{}`, nil))
	for _, name := range slices.Sorted(maps.Keys(hostile.Safetensors())) {
		f.Add(hostile.Safetensors()[name])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := safetensors.ParseBytes(data)
		if err != nil {
			if !errors.Is(err, safetensors.ErrMalformed) {
				t.Fatalf("error does not match ErrMalformed: %v", err)
			}
			return
		}
		covered := int64(0)
		for _, ti := range sf.Tensors {
			covered += ti.End - ti.Begin
		}
		if covered != sf.Size-sf.DataOffset {
			t.Fatalf("tensors cover %d of %d data bytes", covered, sf.Size-sf.DataOffset)
		}
		for _, ti := range sf.Tensors {
			if ti.End > sf.Size-sf.DataOffset || ti.Begin > ti.End {
				t.Fatalf("tensor %q [%d,%d) outside the data", ti.Name, ti.Begin, ti.End)
			}
			b, err := sf.Data(ti.Name)
			if err != nil || int64(len(b)) != ti.Elements()*ti.DType.Size() {
				t.Fatalf("tensor %q: %d bytes, err %v", ti.Name, len(b), err)
			}
		}
	})
}
