// Package safetensors reads and writes the safetensors format of Hugging Face
// (the file PEFT saves adapters in), in pure Go.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON, then the
// data buffer. The JSON object maps each tensor name to its dtype, shape and
// data_offsets ([begin, end) relative to the start of the buffer); the optional
// "__metadata__" entry maps strings to strings.
//
// Parse and Open validate everything before returning: the header length is
// bounded by the file, every dtype is known, every size equals the product of
// the shape times the dtype size, and offsets are ordered, non-overlapping and
// inside the buffer. A malformed file gives an error naming the file, tensor
// and field, never a panic.
//
//	f, err := safetensors.Open("adapter_model.safetensors")
//	if err != nil {
//		return err
//	}
//	defer f.Close()
//	for _, t := range f.Tensors {
//		x, err := f.Float32s(t.Name) // F32, F16, BF16 and F64 are converted
//		...
//	}
//
// WriteFile writes tensors deterministically (sorted by dtype size, then name,
// so every tensor is aligned to its element size) through a temporary file
// renamed into place.
package safetensors
