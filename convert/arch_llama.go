package convert

import "github.com/ecotune/ecotune/gguf"

// llamaArch: Llama 2/3, Mistral, TinyLlama, SmolLM. The only architecture
// whose q_proj and k_proj rows are reordered (llama.cpp's RoPE rotates
// adjacent pairs, transformers' rotate_half the two halves of a head).
var llamaArch = arch{
	name:       "llama",
	classes:    []string{"LlamaForCausalLM", "LLaMAForCausalLM", "MistralForCausalLM"},
	modelType:  "llama",
	tiedOutput: true,
	input:      []entry{e("token_embd.weight", "model.embed_tokens.weight", opNone, dVocab, dEmbd)},
	block:      llamaBlock,
	output: []entry{
		e("output_norm.weight", "model.norm.weight", opNone, dEmbd),
		e("output.weight", "lm_head.weight", opNone, dVocab, dEmbd),
	},
	keys: func(h *hparams, m *gguf.Metadata) error {
		if err := commonKeys("llama", h, m); err != nil {
			return err
		}
		m.Set("llama.vocab_size", u32(h.vocab))
		m.Set("llama.rope.dimension_count", u32(h.headDim))
		return nil
	},
	extra: func(h *hparams) ([]extraTensor, error) {
		f, ok, err := llama3RopeFactors(h, h.headDim)
		if err != nil || !ok {
			return nil, err
		}
		return []extraTensor{{name: "rope_freqs.weight", values: f}}, nil
	},
}

var llamaBlock = []entry{
	e("attn_norm.weight", "input_layernorm.weight", opNone, dEmbd),
	e("attn_q.weight", "self_attn.q_proj.weight", opPermuteQ, dQ, dEmbd),
	e("attn_k.weight", "self_attn.k_proj.weight", opPermuteK, dKV, dEmbd),
	e("attn_v.weight", "self_attn.v_proj.weight", opNone, dKV, dEmbd),
	e("attn_output.weight", "self_attn.o_proj.weight", opNone, dEmbd, dQ),
	e("ffn_norm.weight", "post_attention_layernorm.weight", opNone, dEmbd),
	e("ffn_gate.weight", "mlp.gate_proj.weight", opNone, dFF, dEmbd),
	e("ffn_up.weight", "mlp.up_proj.weight", opNone, dFF, dEmbd),
	e("ffn_down.weight", "mlp.down_proj.weight", opNone, dEmbd, dFF),
}
