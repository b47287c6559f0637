package trainer

import (
	"github.com/ecotune/ecotune/ggml"
)

// archQwen2 is Qwen2 (and Qwen2.5) as llama.cpp converts it: Llama's pre-norm blocks
// with biases on the Q, K and V projections, RoPE over the two halves of each head
// (NeoX order), an output matrix with an optional bias, or tied embeddings.
func archQwen2() *Arch {
	return &Arch{
		Name:     "qwen2",
		Norm:     NormRMS,
		RopeMode: ggml.RopeNeoX,
		Globals: []TensorSpec{
			{Name: tokEmbd, Dims: []Dim{DimEmbd, DimVocab}},
			{Name: outputNorm, Dims: []Dim{DimEmbd}},
			{Name: outputW, Dims: []Dim{DimEmbd, DimVocab}, Optional: true},
			{Name: outputB, Dims: []Dim{DimVocab}, Optional: true},
		},
		Block: append(append([]TensorSpec{
			{Name: "attn_norm.weight", Dims: []Dim{DimEmbd}},
		}, qkvSpecs()...),
			TensorSpec{Name: "attn_output.weight", Dims: []Dim{DimQ, DimEmbd}, LoRA: "attn_output"},
			TensorSpec{Name: "ffn_norm.weight", Dims: []Dim{DimEmbd}},
			TensorSpec{Name: "ffn_gate.weight", Dims: []Dim{DimEmbd, DimFF}, LoRA: "ffn_gate"},
			TensorSpec{Name: "ffn_up.weight", Dims: []Dim{DimEmbd, DimFF}, LoRA: "ffn_up"},
			TensorSpec{Name: "ffn_down.weight", Dims: []Dim{DimFF, DimEmbd}, LoRA: "ffn_down"},
		),
		Fused: fusedQKV,
		Check: checkQKV,
		Layer: func(b *builder, l int, x *ggml.Tensor) *ggml.Tensor {
			x = b.c.Add(x, b.attention(l, b.norm(l, "attn_norm", x), attnOpts{}))
			return b.c.Add(x, b.ffnSwiGLU(l, b.norm(l, "ffn_norm", x)))
		},
	}
}
