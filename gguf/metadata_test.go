package gguf

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMetadataGetters(t *testing.T) {
	m := allValues(t)

	s, err := m.String("general.architecture")
	require.NoError(t, err)
	assert.Equal(t, "llama", s)
	u, err := m.Uint32("u32")
	require.NoError(t, err)
	assert.Equal(t, uint32(4000000000), u)
	i32, err := m.Int32("i32")
	require.NoError(t, err)
	assert.Equal(t, int32(-2000000000), i32)
	u64, err := m.Uint64("u64")
	require.NoError(t, err)
	assert.Equal(t, uint64(1<<63+5), u64)
	i64, err := m.Int64("i64")
	require.NoError(t, err)
	assert.Equal(t, int64(-1<<62), i64)
	f32, err := m.Float32("f32")
	require.NoError(t, err)
	assert.Equal(t, float32(1e-5), f32)
	f64, err := m.Float64("f64")
	require.NoError(t, err)
	assert.Equal(t, math.Pi, f64)
	b, err := m.Bool("bool.true")
	require.NoError(t, err)
	assert.True(t, b)
	i8, err := Get[int8](m, "i8")
	require.NoError(t, err)
	assert.Equal(t, int8(-7), i8)

	strs, err := m.Strings("arr.str")
	require.NoError(t, err)
	assert.Equal(t, []string{"<unk>", "", "▁the"}, strs)
	fs, err := m.Float32s("arr.f32")
	require.NoError(t, err)
	assert.Equal(t, []float32{0.5, -2}, fs)
	is, err := m.Int32s("arr.i32")
	require.NoError(t, err)
	assert.Equal(t, []int32{-1, 0, 1}, is)
	us, err := m.Uint32s("arr.u32")
	require.NoError(t, err)
	assert.Equal(t, []uint32{7, 8, 9}, us)
	bs, err := GetArray[bool](m, "arr.bool")
	require.NoError(t, err)
	assert.Equal(t, []bool{true, false, true}, bs)

	// Int and Ints accept any integer width that fits in int64.
	for key, want := range map[string]int64{"u8": 250, "i8": -7, "u16": 65000, "i16": -32000, "u32": 4000000000, "i32": -2000000000, "i64": -1 << 62} {
		n, err := m.Int(key)
		require.NoError(t, err, key)
		assert.Equal(t, want, n, key)
	}
	_, err = m.Int("u64")
	assert.ErrorIs(t, err, ErrWrongType, "u64 above MaxInt64")
	_, err = m.Int("f32")
	assert.ErrorIs(t, err, ErrWrongType)
	ints, err := m.Ints("arr.u16")
	require.NoError(t, err)
	assert.Equal(t, []int64{1, 65535}, ints)
	ints, err = m.Ints("arr.i8")
	require.NoError(t, err)
	assert.Equal(t, []int64{-128, 127}, ints)
	_, err = m.Ints("arr.str")
	assert.ErrorIs(t, err, ErrWrongType)
	fl, err := m.Float("f32")
	require.NoError(t, err)
	assert.InDelta(t, 1e-5, fl, 1e-12)

	// Errors name the key and say what was found.
	_, err = m.String("u32")
	assert.ErrorIs(t, err, ErrWrongType)
	assert.EqualError(t, err, `gguf: key "u32": is u32, want str: wrong metadata type`)
	_, err = m.Uint32("arr.u32")
	assert.ErrorContains(t, err, `key "arr.u32": is arr[u32], want u32`)
	_, err = m.Strings("general.architecture")
	assert.ErrorContains(t, err, `key "general.architecture": is str, want arr[str]`)
	_, err = m.String("missing.key")
	assert.ErrorIs(t, err, ErrKeyNotFound)
	assert.ErrorContains(t, err, `key "missing.key"`)
}

func TestMetadataOrderAndEdits(t *testing.T) {
	m := &Metadata{}
	m.Set("a", ValueOf(uint32(1)))
	m.Set("b", ValueOf(uint32(2)))
	m.Set("c", ValueOf(uint32(3)))
	m.Set("a", ValueOf("replaced in place"))
	assert.Equal(t, []string{"a", "b", "c"}, m.Keys())

	c := m.Clone()
	assert.True(t, m.Delete("b"))
	assert.False(t, m.Delete("b"))
	assert.Equal(t, []string{"a", "c"}, m.Keys())
	n, err := m.Uint32("c")
	require.NoError(t, err)
	assert.Equal(t, uint32(3), n, "index is rebuilt after Delete")
	m.Set("d", ValueOf(true))
	assert.Equal(t, []string{"a", "c", "d"}, m.Keys())
	assert.Equal(t, []string{"a", "b", "c"}, c.Keys(), "clone is independent")

	var keys []string
	for k := range m.All() {
		keys = append(keys, k)
		break
	}
	assert.Equal(t, []string{"a"}, keys)
}

func TestValues(t *testing.T) {
	src := []float32{1, 2}
	v := ArrayOf(src)
	src[0] = 9
	got, ok := ArrayAs[float32](v)
	require.True(t, ok)
	assert.Equal(t, []float32{1, 2}, got, "ArrayOf copies")
	assert.Equal(t, ValueArray, v.Type())
	assert.Equal(t, ValueFloat32, v.ElemType())
	assert.Equal(t, 2, v.Len())
	_, ok = As[float32](v)
	assert.False(t, ok)

	s := ValueOf("x")
	assert.Equal(t, ValueString, s.Type())
	assert.Equal(t, 0, s.Len())
	assert.Equal(t, "x", s.Interface())
	assert.Equal(t, `"x"`, s.String())

	_, err := ArrayOfArrays([]Value{ValueOf(uint8(1))})
	assert.ErrorContains(t, err, "element 0 is u8, not an array")
	nested, err := ArrayOfArrays([]Value{ArrayOf([]int64{1})})
	require.NoError(t, err)
	inner, ok := nested.Elem(0)
	require.True(t, ok)
	assert.Equal(t, ValueInt64, inner.ElemType())
	_, ok = nested.Elem(1)
	assert.False(t, ok)

	long := make([]int32, 100)
	assert.Equal(t, "[0 0 0 0 0 0 0 0 ... (100 × i32)]", ArrayOf(long).String())
	assert.Equal(t, `["a" "b"]`, ArrayOf([]string{"a", "b"}).String())
	assert.Equal(t, "u32", ValueUint32.String())
	assert.Equal(t, "value_type(42)", ValueType(42).String())
}
