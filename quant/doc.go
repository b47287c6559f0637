// Package quant quantizes weights: rows of float32 through ggml's own
// quantizers (Quantize, Dequantize, RoundTrip for F16, BF16, Q8_0, Q4_0, Q4_K,
// IQ4_NL and the other types ggml quantizes without an importance matrix), an
// exact pure-Go NF4 codec (QLoRA's 4-bit NormalFloat: QuantizeNF4), and whole
// GGUF models (QuantizeModel) with llama-quantize's per-tensor type rules.
//
// QuantizeModel streams: it maps the input, converts one tensor at a time and
// writes the output through a temporary file renamed into place, so memory
// holds one tensor. For the same file type its output is byte for byte
// llama-quantize's (the tests check it against build/cpu/bin/llama-quantize):
//
//	ft, err := quant.ParseFileType("q4_k") // llama-quantize's Q4_K_M
//	if err != nil {
//		return err
//	}
//	sum, err := quant.QuantizeModel(ctx, "model-f32.gguf", "model-q4_k.gguf", quant.Options{
//		Type:     ft,
//		Progress: func(p quant.Progress) { fmt.Printf("\r%d/%d tensors", p.Done, p.Total) },
//	})
//	if err != nil {
//		return err
//	}
//	before, after := sum.BitsPerWeight() // 32.00 -> about 5.6
//
// ggml has no NF4 type, so a model quantized to "nf4" is stored as IQ4_NL,
// ggml's 4-bit non-uniform codebook type, which ggml's kernels compute with.
// The Go codec is QLoRA's format itself; docs/quantization.md compares the
// reconstruction errors of both.
package quant
