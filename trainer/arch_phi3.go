package trainer

import (
	"github.com/ecotune/ecotune/ggml"
)

// archPhi3 is Phi-3 (and Phi-3.5/Phi-4 dense) as llama.cpp converts it: Llama's
// pre-norm blocks with one fused attn_qkv, one fused ffn_up holding the gate half then
// the up half, RoPE in NeoX order (with LongRoPE's short and long frequency factors
// when the file has them), Q scaled before Q·Kᵀ, an output matrix or tied embeddings.
func archPhi3() *Arch {
	return &Arch{
		Name:     "phi3",
		Norm:     NormRMS,
		RopeMode: ggml.RopeNeoX,
		Globals: []TensorSpec{
			{Name: tokEmbd, Dims: []Dim{DimEmbd, DimVocab}},
			{Name: outputNorm, Dims: []Dim{DimEmbd}},
			{Name: outputW, Dims: []Dim{DimEmbd, DimVocab}, Optional: true},
			{Name: ropeFactorsLong, Dims: []Dim{DimRopeHalf}, Optional: true},
			{Name: ropeFactorsShort, Dims: []Dim{DimRopeHalf}, Optional: true},
		},
		Block: append(append([]TensorSpec{
			{Name: "attn_norm.weight", Dims: []Dim{DimEmbd}},
		}, qkvSpecs()...),
			TensorSpec{Name: "attn_output.weight", Dims: []Dim{DimQ, DimEmbd}, LoRA: "attn_output"},
			TensorSpec{Name: "ffn_norm.weight", Dims: []Dim{DimEmbd}},
			TensorSpec{Name: "ffn_up.weight", Dims: []Dim{DimEmbd, DimFF2}, LoRA: "ffn_up"},
			TensorSpec{Name: "ffn_down.weight", Dims: []Dim{DimFF, DimEmbd}, LoRA: "ffn_down"},
		),
		// Hugging Face's Phi3ForCausalLM fuses gate and up into gate_up_proj; it has no
		// separate gate_proj or up_proj.
		HFNames: map[string]string{"gate_up_proj": "ffn_up", "gate_proj": "", "up_proj": ""},
		Fused: map[string]string{
			"attn_q": "attn_qkv", "attn_k": "attn_qkv", "attn_v": "attn_qkv", "ffn_gate": "ffn_up",
		},
		Check: checkQKV,
		Layer: func(b *builder, l int, x *ggml.Tensor) *ggml.Tensor {
			x = b.c.Add(x, b.attention(l, b.norm(l, "attn_norm", x), attnOpts{preScaleQ: true}))
			return b.c.Add(x, b.ffnSwiGLUFused(l, b.norm(l, "ffn_norm", x)))
		},
	}
}
