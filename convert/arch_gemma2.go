package convert

import "github.com/ecotune/ecotune/gguf"

// gemma2Arch: four norms per block, each stored in GGUF as weight+1 (Gemma's
// RMSNorm multiplies by 1+weight), embeddings always tied (the checkpoint's
// lm_head, where present, is dropped), soft-capping and sliding windows.
var gemma2Arch = arch{
	name:      "gemma2",
	classes:   []string{"Gemma2ForCausalLM"},
	modelType: "gemma2",
	noOutput:  true,
	input:     []entry{e("token_embd.weight", "model.embed_tokens.weight", opNone, dVocab, dEmbd)},
	block: []entry{
		e("attn_norm.weight", "input_layernorm.weight", opPlusOne, dEmbd),
		e("attn_q.weight", "self_attn.q_proj.weight", opNone, dQ, dEmbd),
		e("attn_k.weight", "self_attn.k_proj.weight", opNone, dKV, dEmbd),
		e("attn_v.weight", "self_attn.v_proj.weight", opNone, dKV, dEmbd),
		e("attn_output.weight", "self_attn.o_proj.weight", opNone, dEmbd, dQ),
		e("post_attention_norm.weight", "post_attention_layernorm.weight", opPlusOne, dEmbd),
		e("ffn_norm.weight", "pre_feedforward_layernorm.weight", opPlusOne, dEmbd),
		e("ffn_gate.weight", "mlp.gate_proj.weight", opNone, dFF, dEmbd),
		e("ffn_up.weight", "mlp.up_proj.weight", opNone, dFF, dEmbd),
		e("ffn_down.weight", "mlp.down_proj.weight", opNone, dEmbd, dFF),
		e("post_ffw_norm.weight", "post_feedforward_layernorm.weight", opPlusOne, dEmbd),
	},
	output: []entry{e("output_norm.weight", "model.norm.weight", opPlusOne, dEmbd)},
	keys: func(h *hparams, m *gguf.Metadata) error {
		c := h.cfg
		m.Set("gemma2.context_length", u32(h.context))
		m.Set("gemma2.embedding_length", u32(h.embd))
		m.Set("gemma2.block_count", u32(h.layers))
		m.Set("gemma2.feed_forward_length", u32(h.ff))
		m.Set("gemma2.attention.head_count", u32(h.heads))
		m.Set("gemma2.attention.head_count_kv", u32(h.headsKV))
		eps, err := c.float("rms_norm_eps")
		if err != nil {
			return err
		}
		m.Set("gemma2.attention.layer_norm_rms_epsilon", f32(eps))
		m.Set("gemma2.attention.key_length", u32(h.headDim))
		m.Set("gemma2.attention.value_length", u32(h.headDim))
		for _, k := range []string{"attn_logit_softcapping", "final_logit_softcapping"} {
			v, err := c.float(k)
			if err != nil {
				return err
			}
			m.Set("gemma2."+k, f32(v))
		}
		sw, err := c.int("sliding_window")
		if err != nil {
			return err
		}
		m.Set("gemma2.attention.sliding_window", u32(sw))
		return ropeThetaKey("gemma2", h, m)
	},
}
