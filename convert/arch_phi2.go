package convert

import "github.com/ecotune/ecotune/gguf"

// phi2Arch: LayerNorm with biases, biases on every projection and the output,
// a GELU MLP (fc1, fc2), RoPE over part of each head, and no BOS token.
var phi2Arch = arch{
	name:      "phi2",
	classes:   []string{"PhiForCausalLM"},
	modelType: "phi",
	bpeOnly:   true,
	input:     []entry{e("token_embd.weight", "model.embed_tokens.weight", opNone, dVocab, dEmbd)},
	block: []entry{
		e("attn_norm.weight", "input_layernorm.weight", opNone, dEmbd),
		e("attn_norm.bias", "input_layernorm.bias", opNone, dEmbd),
		e("attn_q.weight", "self_attn.q_proj.weight", opNone, dQ, dEmbd),
		e("attn_q.bias", "self_attn.q_proj.bias", opNone, dQ),
		e("attn_k.weight", "self_attn.k_proj.weight", opNone, dKV, dEmbd),
		e("attn_k.bias", "self_attn.k_proj.bias", opNone, dKV),
		e("attn_v.weight", "self_attn.v_proj.weight", opNone, dKV, dEmbd),
		e("attn_v.bias", "self_attn.v_proj.bias", opNone, dKV),
		e("attn_output.weight", "self_attn.dense.weight", opNone, dEmbd, dQ),
		e("attn_output.bias", "self_attn.dense.bias", opNone, dEmbd),
		e("ffn_up.weight", "mlp.fc1.weight", opNone, dFF, dEmbd),
		e("ffn_up.bias", "mlp.fc1.bias", opNone, dFF),
		e("ffn_down.weight", "mlp.fc2.weight", opNone, dEmbd, dFF),
		e("ffn_down.bias", "mlp.fc2.bias", opNone, dEmbd),
	},
	output: []entry{
		e("output_norm.weight", "model.final_layernorm.weight", opNone, dEmbd),
		e("output_norm.bias", "model.final_layernorm.bias", opNone, dEmbd),
		e("output.weight", "lm_head.weight", opNone, dVocab, dEmbd),
		e("output.bias", "lm_head.bias", opNone, dVocab),
	},
	keys: func(h *hparams, m *gguf.Metadata) error {
		c := h.cfg
		m.Set("phi2.context_length", u32(h.context))
		m.Set("phi2.embedding_length", u32(h.embd))
		// llama.cpp's converter writes 4·n_embd, which is Phi-2's intermediate_size;
		// the checkpoint's own value is the one its tensors have.
		m.Set("phi2.feed_forward_length", u32(h.ff))
		m.Set("phi2.block_count", u32(h.layers))
		m.Set("phi2.attention.head_count", u32(h.heads))
		m.Set("phi2.attention.head_count_kv", u32(h.headsKV))
		eps, err := c.float("layer_norm_eps", "layer_norm_epsilon")
		if err != nil {
			return err
		}
		m.Set("phi2.attention.layer_norm_epsilon", f32(eps))
		pct, ok, err := ropeNumber(h, c.rope(), "partial_rotary_factor")
		if err != nil {
			return err
		}
		if !ok {
			pct = 0.5
		}
		m.Set("phi2.rope.dimension_count", u32(int(pct*float64(h.embd))/h.heads))
		return ropeThetaKey("phi2", h, m)
	},
}
