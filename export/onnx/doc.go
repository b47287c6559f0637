// Package onnx exports a GGUF decoder (llama, qwen2) as an ONNX model that
// onnxruntime runs: opset 17, standard operators only, weights as
// initializers (in an external data file past protobuf's 2 GB), written by a
// small protobuf encoder of its own (no generated code, no cgo).
//
//	sum, err := onnx.Export(ctx, onnx.Options{
//		Model:   "merged.gguf",
//		Out:     "model.onnx",
//		KVCache: true, // past_key_values.N.key/value in, present.N.key/value out
//	})
//
// The graph takes input_ids, attention_mask and position_ids (int64,
// [batch, sequence]) and gives logits [batch, sequence, vocab], computing
// what llama.cpp computes on the file: RMSNorm, RoPE, grouped-query
// attention with a causal and padding mask, SwiGLU, a tied or separate
// output head. With Options.KVCache the model also takes
// past_key_values.N.key and .value [batch, kv_heads, past_len, head_dim]
// (past_len may be 0) and returns present.N.key and .value with the new
// tokens appended, the layout Hugging Face Optimum uses for decoders; the
// attention mask then covers past and new tokens.
//
// Initializers carry Hugging Face's state-dict names and layouts
// (model.layers.N.self_attn.q_proj.weight, [out, in]). llama.cpp's converter
// reorders the rows of llama's q and k projections so that its RoPE can
// rotate adjacent pairs; the export puts them back and rotates halves
// (rotate_half), which gives the same attention scores and makes the cached
// keys those of the transformers model. F32 and F16 weights keep their type;
// BF16 becomes F32, and quantized types are dequantized to F32 through
// Options.Dequantize (package quant's converters, given by the caller so that
// this package stays free of cgo).
package onnx
