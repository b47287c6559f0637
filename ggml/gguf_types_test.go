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
