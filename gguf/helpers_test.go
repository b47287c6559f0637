package gguf

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
)

// vocabDir holds llama.cpp's vocabularies, relative to this package's directory.
const vocabDir = "../third_party/llama.cpp/models"

// Paths of the committed test assets (testdata/ at the repository root, testdata/README.md).
var (
	storiesPath   = testenv.StoriesPath()
	tinyLlamaPath = filepath.Join(testenv.TestdataDir(), "llama-2-tiny-random.gguf")
)

// requireFile returns path made absolute, skipping the test when the asset is absent (a
// user's checkout), or failing it with ECOTUNE_REQUIRE_TOOLS=1.
func requireFile(t testing.TB, path string) string {
	t.Helper()
	return testenv.Require(t, path, "the test asset "+path)
}

// allValues returns metadata with every value type, arrays of each, empty and
// nested arrays.
func allValues(t testing.TB) *Metadata {
	t.Helper()
	inner1 := ArrayOf([]uint8{1, 2, 3})
	inner2 := ArrayOf([]string{"a", "", "ü"})
	inner3 := ArrayOf([]int32{})
	nested, err := ArrayOfArrays([]Value{inner1, inner2, inner3})
	require.NoError(t, err)
	deeper, err := ArrayOfArrays([]Value{nested, ArrayOf([]float64{1.5})})
	require.NoError(t, err)

	m := &Metadata{}
	m.Set("general.architecture", ValueOf("llama"))
	m.Set("u8", ValueOf(uint8(250)))
	m.Set("i8", ValueOf(int8(-7)))
	m.Set("u16", ValueOf(uint16(65000)))
	m.Set("i16", ValueOf(int16(-32000)))
	m.Set("u32", ValueOf(uint32(4000000000)))
	m.Set("i32", ValueOf(int32(-2000000000)))
	m.Set("f32", ValueOf(float32(1e-5)))
	m.Set("bool.true", ValueOf(true))
	m.Set("bool.false", ValueOf(false))
	m.Set("str.empty", ValueOf(""))
	m.Set("str.unicode", ValueOf("héllo, 世界 \x00 nul"))
	m.Set("u64", ValueOf(uint64(1<<63+5)))
	m.Set("i64", ValueOf(int64(-1<<62)))
	m.Set("f64", ValueOf(3.141592653589793))
	m.Set("arr.u8", ArrayOf([]uint8{0, 255}))
	m.Set("arr.i8", ArrayOf([]int8{-128, 127}))
	m.Set("arr.u16", ArrayOf([]uint16{1, 65535}))
	m.Set("arr.i16", ArrayOf([]int16{-1, 1}))
	m.Set("arr.u32", ArrayOf([]uint32{7, 8, 9}))
	m.Set("arr.i32", ArrayOf([]int32{-1, 0, 1}))
	m.Set("arr.f32", ArrayOf([]float32{0.5, -2}))
	m.Set("arr.bool", ArrayOf([]bool{true, false, true}))
	m.Set("arr.str", ArrayOf([]string{"<unk>", "", "▁the"}))
	m.Set("arr.u64", ArrayOf([]uint64{1 << 40}))
	m.Set("arr.i64", ArrayOf([]int64{-1 << 40}))
	m.Set("arr.f64", ArrayOf([]float64{1e300}))
	m.Set("arr.empty", ArrayOf([]string{}))
	m.Set("arr.nested", nested)
	m.Set("arr.deeper", deeper)
	return m
}

// sampleBuilder returns a small model with several tensor types and metadata of
// every type; data bytes follow a pattern so misplaced data shows.
func sampleBuilder(t testing.TB) *Builder {
	t.Helper()
	mk := func(name string, typ Type, dims ...int64) Tensor {
		info := TensorInfo{Name: name, Dims: dims, Type: typ}
		size, err := info.Size()
		require.NoError(t, err)
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + len(name))
		}
		return Tensor{TensorInfo: info, Data: DataBytes(data)}
	}
	return &Builder{Meta: allValues(t), Tensors: []Tensor{
		mk("token_embd.weight", TypeF16, 8, 3),
		mk("blk.0.attn_q.weight", TypeQ4_0, 32, 2),
		mk("blk.0.ffn_up.weight", TypeQ8_0, 64, 1, 1, 2),
		mk("output_norm.weight", TypeF32, 5),
		mk("scalar", TypeI32),
	}}
}

// sampleBytes encodes sampleBuilder.
func sampleBytes(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	_, err := sampleBuilder(t).WriteTo(&buf)
	require.NoError(t, err)
	return buf.Bytes()
}

// raw builds GGUF bytes field by field, for inputs the Builder refuses to make.
type raw struct{ b []byte }

func newRaw(version uint32, nTensors, nKV uint64) *raw {
	r := &raw{b: []byte(Magic)}
	return r.u32(version).u64(nTensors).u64(nKV)
}

func (r *raw) u8(v uint8) *raw   { r.b = append(r.b, v); return r }
func (r *raw) u32(v uint32) *raw { r.b = binary.LittleEndian.AppendUint32(r.b, v); return r }
func (r *raw) u64(v uint64) *raw { r.b = binary.LittleEndian.AppendUint64(r.b, v); return r }
func (r *raw) str(s string) *raw { r.u64(uint64(len(s))); r.b = append(r.b, s...); return r }

// kvU32 appends a u32 key-value pair.
func (r *raw) kvU32(key string, v uint32) *raw {
	return r.str(key).u32(uint32(ValueUint32)).u32(v)
}

// tensor appends a tensor info.
func (r *raw) tensor(name string, typ Type, off uint64, dims ...uint64) *raw {
	r.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		r.u64(d)
	}
	return r.u32(uint32(typ)).u64(off)
}

// data pads to 32 and appends n data bytes.
func (r *raw) data(n int) []byte {
	for len(r.b)%DefaultAlignment != 0 {
		r.b = append(r.b, 0)
	}
	return append(r.b, make([]byte, n)...)
}

// zeros appends n zero bytes and returns the result.
func (r *raw) zeros(n int) []byte { return append(r.b, make([]byte, n)...) }

// writeTemp writes b to a file in a fresh temporary directory.
func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}
