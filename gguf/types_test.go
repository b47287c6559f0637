package gguf

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTypeTable(t *testing.T) {
	// Spot checks: sizeof(block_*) in ggml-common.h worked out by hand.
	cases := []struct {
		typ        Type
		name       string
		blck, size int64
		quantized  bool
	}{
		{TypeF32, "f32", 1, 4, false},
		{TypeF16, "f16", 1, 2, false},
		{TypeBF16, "bf16", 1, 2, false},
		{TypeF64, "f64", 1, 8, false},
		{TypeI8, "i8", 1, 1, false},
		{TypeI64, "i64", 1, 8, false},
		{TypeQ4_0, "q4_0", 32, 2 + 16, true},
		{TypeQ4_1, "q4_1", 32, 4 + 16, true},
		{TypeQ5_0, "q5_0", 32, 2 + 4 + 16, true},
		{TypeQ8_0, "q8_0", 32, 2 + 32, true},
		{TypeQ8_1, "q8_1", 32, 4 + 32, true},
		{TypeQ2_K, "q2_K", 256, 4 + 16 + 64, true},
		{TypeQ4_K, "q4_K", 256, 4 + 12 + 128, true},
		{TypeQ6_K, "q6_K", 256, 2 + 16 + 192, true},
		{TypeQ8_K, "q8_K", 256, 4 + 256 + 32, true},
		{TypeIQ4_NL, "iq4_nl", 32, 2 + 16, true},
		{TypeIQ4_XS, "iq4_xs", 256, 2 + 2 + 4 + 128, true},
		{TypeIQ1_M, "iq1_m", 256, 32 + 16 + 8, true},
		{TypeTQ1_0, "tq1_0", 256, 2 + 4 + 48, true},
		{TypeMXFP4, "mxfp4", 32, 1 + 16, true},
		{TypeNVFP4, "nvfp4", 64, 4 + 32, true},
		{TypeQ1_0, "q1_0", 128, 2 + 16, true},
		{TypeQ2_0, "q2_0", 64, 2 + 16, true},
	}
	for _, c := range cases {
		info, ok := TypeInfo(c.typ)
		require.True(t, ok, c.name)
		assert.Equal(t, Info{Type: c.typ, Name: c.name, BlockSize: c.blck, TypeSize: c.size, Quantized: c.quantized}, info)
		assert.Equal(t, c.name, c.typ.String())
		assert.Equal(t, c.blck, c.typ.BlockSize())
		assert.Equal(t, c.size, c.typ.TypeSize())
		assert.Equal(t, c.quantized, c.typ.IsQuantized())
	}

	for _, removed := range []Type{4, 5, 31, 32, 33, 36, 37, 38, TypeCount, 1000} {
		_, ok := TypeInfo(removed)
		assert.False(t, ok, "type %d", removed)
		assert.False(t, removed.Known())
		assert.Equal(t, int64(0), removed.BlockSize())
	}
	assert.Equal(t, "type(4)", Type(4).String())

	all := Types()
	assert.Len(t, all, 35)
	names := map[string]bool{}
	for i, info := range all {
		if i > 0 {
			assert.Less(t, all[i-1].Type, info.Type, "Types is in id order")
		}
		assert.False(t, names[info.Name], "duplicate name %s", info.Name)
		names[info.Name] = true
		assert.Positive(t, info.BlockSize)
		assert.Positive(t, info.TypeSize)
		got, err := ParseType(strings.ToUpper(info.Name))
		require.NoError(t, err)
		assert.Equal(t, info.Type, got)
	}
	_, err := ParseType("nf4")
	assert.ErrorContains(t, err, `unknown tensor type "nf4"`)
}

// TestTypeIDsMatchGGMLHeader reads enum ggml_type from the pinned ggml.h: every
// enumerator must be in the table under the same id and name, and nothing else.
// (Block sizes are checked against the C library by the ggml package.)
func TestTypeIDsMatchGGMLHeader(t *testing.T) {
	src, err := os.ReadFile(requireFile(t, "../third_party/llama.cpp/ggml/include/ggml.h"))
	require.NoError(t, err)
	enum := regexp.MustCompile(`(?s)enum ggml_type \{(.*?)\};`).FindSubmatch(src)
	require.NotNil(t, enum, "enum ggml_type not found in ggml.h")
	line := regexp.MustCompile(`(?m)^\s*GGML_TYPE_(\w+)\s*=\s*(\d+)`)
	seen := 0
	for _, m := range line.FindAllSubmatch(enum[1], -1) {
		name := string(m[1])
		id, err := strconv.Atoi(string(m[2]))
		require.NoError(t, err)
		if name == "COUNT" {
			assert.Equal(t, TypeCount, Type(id), "GGML_TYPE_COUNT")
			continue
		}
		seen++
		info, ok := TypeInfo(Type(id))
		if assert.True(t, ok, "GGML_TYPE_%s = %d missing from the table", name, id) {
			assert.True(t, strings.EqualFold(name, info.Name), "id %d: ggml.h says %s, table says %s", id, name, info.Name)
		}
	}
	assert.Equal(t, len(Types()), seen, "table has types ggml.h does not define")
}

func TestRowSize(t *testing.T) {
	n, err := RowSize(TypeQ4_K, 4096)
	require.NoError(t, err)
	assert.Equal(t, int64(16*144), n)
	n, err = RowSize(TypeF16, 7)
	require.NoError(t, err)
	assert.Equal(t, int64(14), n)

	_, err = RowSize(TypeQ8_0, 33)
	assert.ErrorContains(t, err, "not a multiple of the block size 32")
	_, err = RowSize(Type(4), 32)
	assert.ErrorContains(t, err, "unknown tensor type 4")
	_, err = RowSize(TypeF64, 1<<61)
	assert.ErrorContains(t, err, "overflows")
	_, err = RowSize(TypeF32, -1)
	assert.Error(t, err)
}

func TestTensorInfoSize(t *testing.T) {
	size, err := TensorInfo{Name: "x", Dims: []int64{64, 3, 2}, Type: TypeQ8_0}.Size()
	require.NoError(t, err)
	assert.Equal(t, int64(2*34*3*2), size)
	size, err = TensorInfo{Name: "scalar", Type: TypeF32}.Size()
	require.NoError(t, err)
	assert.Equal(t, int64(4), size, "no dims is one element")

	_, err = TensorInfo{Name: strings.Repeat("n", 64), Dims: []int64{1}}.Size()
	assert.ErrorContains(t, err, "longer than ggml's limit")
	_, err = TensorInfo{Dims: []int64{1, 1, 1, 1, 1}}.Size()
	assert.ErrorContains(t, err, "5 dimensions")
	_, err = TensorInfo{Dims: []int64{4, 0}}.Size()
	assert.ErrorContains(t, err, "dimension 1 is 0")
	_, err = TensorInfo{Dims: []int64{1 << 32, 1 << 32}}.Size()
	assert.ErrorContains(t, err, "element count overflows")
}
