// Package export turns a LoRA adapter into what other tools run: a merged
// GGUF model (Merge), a PEFT adapter directory for Hugging Face's stack
// (ExportPEFT, and ImportPEFT back), and an Ollama Modelfile (WriteOllama).
//
// Adapters are llama.cpp's LoRA GGUF files (see OpenAdapter). Everything here
// is pure Go apart from ggml's row converters, reached through package quant,
// which Merge uses to dequantize and quantize weights.
//
//	sum, err := export.Merge(ctx, export.MergeOptions{
//		Base:     "base.gguf",
//		Adapters: []export.AdapterScale{{Path: "adapter.gguf", Scale: 1}},
//		Out:      "merged.gguf",
//		Type:     "q4_k", // "" keeps each tensor's own type
//	})
//
// A merged model gives the logits llama.cpp computes for the base model with
// the adapter applied (--lora), up to the rounding of the merged weights to
// their stored type.
package export
