package trainer

import (
	"github.com/ecotune/ecotune/ggml"
)

// archLlama is Llama (1, 2, 3, 3.1 with its rope_freqs) as llama.cpp converts it:
// pre-norm blocks of grouped-query attention with adjacent-pair RoPE and a SwiGLU
// feed-forward, RMSNorm everywhere, an output matrix or tied embeddings.
func archLlama() *Arch {
	return &Arch{
		Name:     "llama",
		Norm:     NormRMS,
		RopeMode: ggml.RopeNormal,
		Globals: []TensorSpec{
			{Name: tokEmbd, Dims: []Dim{DimEmbd, DimVocab}},
			{Name: outputNorm, Dims: []Dim{DimEmbd}},
			{Name: outputW, Dims: []Dim{DimEmbd, DimVocab}, Optional: true},
			{Name: ropeFreqs, Dims: []Dim{DimRopeHalf}, Optional: true},
			{Name: ropeFactorsLong, Dims: []Dim{DimRopeHalf}, Optional: true},
			{Name: ropeFactorsShort, Dims: []Dim{DimRopeHalf}, Optional: true},
		},
		Block: []TensorSpec{
			{Name: "attn_norm.weight", Dims: []Dim{DimEmbd}},
			{Name: "attn_q.weight", Dims: []Dim{DimEmbd, DimQ}, LoRA: "attn_q"},
			{Name: "attn_k.weight", Dims: []Dim{DimEmbd, DimKV}, LoRA: "attn_k"},
			{Name: "attn_v.weight", Dims: []Dim{DimEmbd, DimKV}, LoRA: "attn_v"},
			{Name: "attn_output.weight", Dims: []Dim{DimQ, DimEmbd}, LoRA: "attn_output"},
			{Name: "ffn_norm.weight", Dims: []Dim{DimEmbd}},
			{Name: "ffn_gate.weight", Dims: []Dim{DimEmbd, DimFF}, LoRA: "ffn_gate"},
			{Name: "ffn_up.weight", Dims: []Dim{DimEmbd, DimFF}, LoRA: "ffn_up"},
			{Name: "ffn_down.weight", Dims: []Dim{DimFF, DimEmbd}, LoRA: "ffn_down"},
		},
		Layer: func(b *builder, l int, x *ggml.Tensor) *ggml.Tensor {
			x = b.c.Add(x, b.attention(l, b.norm(l, "attn_norm", x), attnOpts{}))
			return b.c.Add(x, b.ffnSwiGLU(l, b.norm(l, "ffn_norm", x)))
		},
	}
}
