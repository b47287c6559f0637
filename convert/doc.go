// Package convert turns Hugging Face checkpoints into GGUF models and back,
// in pure Go: config.json, safetensors shards and tokenizer files in, one
// GGUF file out (Convert), and the reverse (ExportHF), for the architectures
// the trainer supports: llama (Llama 2/3, Mistral, TinyLlama, SmolLM), qwen2,
// phi3, phi2 and gemma2.
//
// It follows llama.cpp's converter (convert_hf_to_gguf.py at the pinned
// commit): the tensor names of each architecture, llama's q/k row order for
// its RoPE, phi3's fused projections kept fused, gemma2's norms stored as
// weight+1, biases and norms in F32, rope scaling (linear, YaRN, llama3's
// rope_freqs, phi3's LongRoPE factors), tied embeddings, the hyper-parameter
// keys llama.cpp reads, BPE tokenizers from tokenizer.json and SentencePiece
// ones from tokenizer.model, special tokens and the chat template.
//
//	sum, err := convert.Convert(ctx, convert.Options{Dir: "SmolLM2-135M", Out: "smollm2.gguf"})
//	if err != nil {
//		return err
//	}
//	fmt.Println(sum.Arch, sum.Tensors, sum.Tokenizer.Pre) // llama 272 smollm
//
// Tensors are streamed a few megabytes at a time, so memory does not grow
// with the model; the output is written to a temporary file and renamed into
// place only when complete. Every check (config keys, each tensor's presence,
// dtype and shape against config.json, the tokenizer) runs before anything is
// written, and a bad checkpoint gets one error naming the file and field.
//
// The package imports no cgo: quantizing (cmd/ecotune passes the result
// through quant) and dequantizing for ExportHF (a function the caller passes)
// stay outside it, and PreHash takes a Tokenizer interface for the check
// against llama.cpp's pre-tokenizer table.
package convert
