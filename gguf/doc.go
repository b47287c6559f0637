// Package gguf reads and writes GGUF files (versions 2 and 3), the model format
// of llama.cpp and ggml, in pure Go.
//
// A file is a header (magic, version, ordered metadata, tensor infos), padding
// to the data alignment (general.alignment, default 32), and the tensor data,
// each tensor at an aligned offset from the start of the data section.
//
// Open maps a file read-only and validates all of it before returning: counts,
// lengths and offsets are bounded by the file size, so a malformed file gives a
// *FormatError (matching ErrMalformed) naming the file, key or tensor, never a
// panic or an allocation far beyond the file's size. Tensor data is never
// copied: Data gives views into the mapping, valid until Close.
//
//	f, err := gguf.Open("model.gguf")
//	if err != nil {
//		return err
//	}
//	defer f.Close()
//	arch, err := f.Meta.String("general.architecture")
//	...
//	w, err := f.Data("token_embd.weight") // []byte, len = Size of the tensor
//
// A Builder writes a file: metadata in order, then tensors whose data is
// streamed one at a time by a DataFunc, into a temporary file that is synced and
// renamed into place only once every tensor had exactly the right byte count.
//
//	meta := &gguf.Metadata{}
//	meta.Set("general.architecture", gguf.ValueOf("llama"))
//	meta.Set("llama.block_count", gguf.ValueOf(uint32(1)))
//	b := &gguf.Builder{Meta: meta, Tensors: []gguf.Tensor{{
//		TensorInfo: gguf.TensorInfo{Name: "w", Dims: []int64{4, 2}, Type: gguf.TypeF32},
//		Data:       gguf.DataBytes(make([]byte, 4*2*4)),
//	}}}
//	err := b.WriteFile("out.gguf")
//
// File.Builder starts a new file from an existing one (to quantize, merge or
// edit metadata); File.WriteFile and CopyFile write a file back byte for byte.
//
// The ggml type table (TypeInfo, Types, RowSize) follows ggml's type_traits at
// the pinned llama.cpp commit.
package gguf
