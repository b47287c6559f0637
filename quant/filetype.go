package quant

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ecotune/ecotune/gguf"
)

// FileType is llama.cpp's llama_ftype: the quantization mix of a model file,
// stored in its general.file_type. Its default tensor type is what most 2-D
// weights get; the mix rules (see Plan) give some tensors other types.
type FileType uint32

// The file types QuantizeModel writes, with llama.h's values.
const (
	FileTypeF32    FileType = 0
	FileTypeF16    FileType = 1
	FileTypeQ4_0   FileType = 2
	FileTypeQ4_1   FileType = 3
	FileTypeQ8_0   FileType = 7
	FileTypeQ5_0   FileType = 8
	FileTypeQ5_1   FileType = 9
	FileTypeQ4_K_S FileType = 14
	FileTypeQ4_K_M FileType = 15
	FileTypeQ5_K_S FileType = 16
	FileTypeQ5_K_M FileType = 17
	FileTypeQ6_K   FileType = 18
	FileTypeIQ4_NL FileType = 25
	FileTypeIQ4_XS FileType = 30
	FileTypeBF16   FileType = 32
)

// fileTypes maps each file type to llama-quantize's name for it and its
// default tensor type (llama_ftype_get_default_type).
var fileTypes = []struct {
	ft   FileType
	name string
	typ  gguf.Type
}{
	{FileTypeF32, "F32", gguf.TypeF32},
	{FileTypeF16, "F16", gguf.TypeF16},
	{FileTypeBF16, "BF16", gguf.TypeBF16},
	{FileTypeQ8_0, "Q8_0", gguf.TypeQ8_0},
	{FileTypeQ4_0, "Q4_0", gguf.TypeQ4_0},
	{FileTypeQ4_1, "Q4_1", gguf.TypeQ4_1},
	{FileTypeQ5_0, "Q5_0", gguf.TypeQ5_0},
	{FileTypeQ5_1, "Q5_1", gguf.TypeQ5_1},
	{FileTypeQ4_K_S, "Q4_K_S", gguf.TypeQ4_K},
	{FileTypeQ4_K_M, "Q4_K_M", gguf.TypeQ4_K},
	{FileTypeQ5_K_S, "Q5_K_S", gguf.TypeQ5_K},
	{FileTypeQ5_K_M, "Q5_K_M", gguf.TypeQ5_K},
	{FileTypeQ6_K, "Q6_K", gguf.TypeQ6_K},
	{FileTypeIQ4_NL, "IQ4_NL", gguf.TypeIQ4_NL},
	{FileTypeIQ4_XS, "IQ4_XS", gguf.TypeIQ4_XS},
}

// aliases are the user-facing names that are not llama-quantize's own.
var aliases = map[string]FileType{
	// q4_k is the usual 4-bit k-quant mix: llama-quantize's Q4_K_M.
	"q4_k": FileTypeQ4_K_M,
	"q5_k": FileTypeQ5_K_M,
	// ggml has no NF4 type; IQ4_NL is its non-uniform 4-bit codebook type
	// (docs/quantization.md).
	"nf4": FileTypeIQ4_NL,
}

// UserTypes are the names `ecotune quantize --type` documents; ParseFileType
// accepts all of llama-quantize's names above as well.
var UserTypes = []string{"q4_k", "q4_0", "iq4_nl", "nf4", "q8_0", "f16", "bf16"}

// ParseFileType returns the file type named s, case-insensitively: a name of
// llama-quantize's ("Q4_K_M", "q8_0") or an alias ("q4_k" is Q4_K_M, "q5_k" is
// Q5_K_M, "nf4" is IQ4_NL).
func ParseFileType(s string) (FileType, error) {
	ls := strings.ToLower(s)
	if ft, ok := aliases[ls]; ok {
		return ft, nil
	}
	for _, e := range fileTypes {
		if strings.ToLower(e.name) == ls {
			return e.ft, nil
		}
	}
	names := slices.Clone(UserTypes)
	for _, e := range fileTypes {
		names = append(names, strings.ToLower(e.name))
	}
	slices.Sort(names)
	return 0, fmt.Errorf("quant: unknown type %q; known: %s", s, strings.Join(slices.Compact(names), ", "))
}

// String returns llama-quantize's name for ft ("Q4_K_M").
func (ft FileType) String() string {
	for _, e := range fileTypes {
		if e.ft == ft {
			return e.name
		}
	}
	return fmt.Sprintf("FileType(%d)", uint32(ft))
}

// DefaultType returns the tensor type most weights of ft get, and false for a
// file type this package does not write.
func (ft FileType) DefaultType() (gguf.Type, bool) {
	for _, e := range fileTypes {
		if e.ft == ft {
			return e.typ, true
		}
	}
	return 0, false
}
