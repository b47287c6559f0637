package convert

import "github.com/ecotune/ecotune/gguf"

// qwen2Arch: llama's layout with biases on q, k and v, and NeoX RoPE, so no
// row reordering.
var qwen2Arch = arch{
	name:       "qwen2",
	classes:    []string{"Qwen2ForCausalLM"},
	modelType:  "qwen2",
	tiedOutput: true,
	input:      []entry{e("token_embd.weight", "model.embed_tokens.weight", opNone, dVocab, dEmbd)},
	block: []entry{
		e("attn_norm.weight", "input_layernorm.weight", opNone, dEmbd),
		e("attn_q.weight", "self_attn.q_proj.weight", opNone, dQ, dEmbd),
		e("attn_q.bias", "self_attn.q_proj.bias", opNone, dQ),
		e("attn_k.weight", "self_attn.k_proj.weight", opNone, dKV, dEmbd),
		e("attn_k.bias", "self_attn.k_proj.bias", opNone, dKV),
		e("attn_v.weight", "self_attn.v_proj.weight", opNone, dKV, dEmbd),
		e("attn_v.bias", "self_attn.v_proj.bias", opNone, dKV),
		e("attn_output.weight", "self_attn.o_proj.weight", opNone, dEmbd, dQ),
		e("ffn_norm.weight", "post_attention_layernorm.weight", opNone, dEmbd),
		e("ffn_gate.weight", "mlp.gate_proj.weight", opNone, dFF, dEmbd),
		e("ffn_up.weight", "mlp.up_proj.weight", opNone, dFF, dEmbd),
		e("ffn_down.weight", "mlp.down_proj.weight", opNone, dEmbd, dFF),
	},
	output: []entry{
		e("output_norm.weight", "model.norm.weight", opNone, dEmbd),
		e("output.weight", "lm_head.weight", opNone, dVocab, dEmbd),
	},
	keys: func(h *hparams, m *gguf.Metadata) error { return commonKeys("qwen2", h, m) },
}
