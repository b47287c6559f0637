package trainer

import (
	"github.com/ecotune/ecotune/ggml"
)

// archPhi2 is Phi-2 as llama.cpp converts it: one LayerNorm (with bias) feeding
// attention and a GELU MLP in parallel, both added to the residual; RoPE in NeoX order
// over the first rope.dimension_count dims of each head only; Q scaled before Q·Kᵀ;
// biases on every projection and on the output matrix, which is never tied.
func archPhi2() *Arch {
	return &Arch{
		Name:     "phi2",
		Norm:     NormLayer,
		RopeMode: ggml.RopeNeoX,
		Globals: []TensorSpec{
			{Name: tokEmbd, Dims: []Dim{DimEmbd, DimVocab}},
			{Name: outputNorm, Dims: []Dim{DimEmbd}},
			{Name: "output_norm.bias", Dims: []Dim{DimEmbd}},
			{Name: outputW, Dims: []Dim{DimEmbd, DimVocab}},
			{Name: outputB, Dims: []Dim{DimVocab}},
		},
		Block: append(append([]TensorSpec{
			{Name: "attn_norm.weight", Dims: []Dim{DimEmbd}},
			{Name: "attn_norm.bias", Dims: []Dim{DimEmbd}},
		}, qkvSpecs()...),
			TensorSpec{Name: "attn_output.weight", Dims: []Dim{DimQ, DimEmbd}, LoRA: "attn_output"},
			TensorSpec{Name: "attn_output.bias", Dims: []Dim{DimEmbd}},
			TensorSpec{Name: "ffn_up.weight", Dims: []Dim{DimEmbd, DimFF}, LoRA: "ffn_up"},
			TensorSpec{Name: "ffn_up.bias", Dims: []Dim{DimFF}},
			TensorSpec{Name: "ffn_down.weight", Dims: []Dim{DimFF, DimEmbd}, LoRA: "ffn_down"},
			TensorSpec{Name: "ffn_down.bias", Dims: []Dim{DimEmbd}},
		),
		// Hugging Face's PhiForCausalLM names (dense, fc1, fc2) and the original
		// microsoft/phi-2 ones (Wqkv, out_proj).
		HFNames: map[string]string{
			"dense": "attn_output", "fc1": "ffn_up", "fc2": "ffn_down",
			"Wqkv": "attn_qkv", "out_proj": "attn_output",
		},
		Fused: fusedQKV,
		Check: checkQKV,
		Layer: func(b *builder, l int, x *ggml.Tensor) *ggml.Tensor {
			h := b.norm(l, "attn_norm", x)
			return b.c.Add(b.c.Add(b.attention(l, h, attnOpts{preScaleQ: true}), b.ffnGELU(l, h)), x)
		},
	}
}
