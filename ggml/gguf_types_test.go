//go:build cgo

package ggml

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ecotune/ecotune/gguf"
)

// TestGGUFTypeTableMatchesGGML checks the pure-Go type table the GGUF reader validates
// files with against the sizes ggml itself reports, for every type either side knows.
func TestGGUFTypeTableMatchesGGML(t *testing.T) {
	goTypes := map[int]gguf.Info{}
	for _, info := range gguf.Types() {
		goTypes[int(info.Type)] = info
	}
	for _, typ := range Types() {
		info, ok := goTypes[int(typ)]
		if !assert.Truef(t, ok, "ggml type %s (%d) is missing from gguf's table", typ, typ) {
			continue
		}
		assert.Equal(t, typ.String(), info.Name, "name of type %d", typ)
		assert.EqualValues(t, typ.BlockSize(), info.BlockSize, "block size of %s", typ)
		assert.EqualValues(t, typ.TypeSize(), info.TypeSize, "type size of %s", typ)
		assert.Equal(t, typ.IsQuantized(), info.Quantized, "quantized flag of %s", typ)
		delete(goTypes, int(typ))
	}
	assert.Empty(t, goTypes, "gguf knows types this ggml does not")
}

// TestRowGroup checks that grouped rows make whole 256-value super-blocks, in as few
// rows as can, for the types CUDA's get_rows reads only that way.
func TestRowGroup(t *testing.T) {
	for _, typ := range []Type{TypeIQ4_NL, TypeMXFP4} {
		for width, want := range map[int]int{32: 8, 96: 8, 160: 8, 256: 1, 576: 4, 640: 2, 2048: 1, 2880: 4} {
			k := typ.RowGroup(width)
			assert.Equal(t, want, k, "%s rows of %d", typ, width)
			assert.Zero(t, width*k%256, "%s rows of %d", typ, width)
		}
	}
	for _, typ := range []Type{TypeF32, TypeQ4_0, TypeQ4_K, TypeQ8_0} {
		assert.Equal(t, 1, typ.RowGroup(576), "%s", typ)
	}
}
