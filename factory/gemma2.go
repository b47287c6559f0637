package factory

import "github.com/ecotune/ecotune/gguf"

// gemma2Arch: RMSNorm before and after both attention and MLP
// (post_attention_norm, post_ffw_norm), a GELU-gated MLP, token embeddings
// always tied to the output, sliding-window attention on every other layer,
// and tanh soft-capping of attention scores and final logits. GGUF stores
// Gemma's norm weights with the +1 already added, so they start at 1 here too.
var gemma2Arch = archDef{
	name:         "gemma2",
	norm:         rmsNorm,
	normEps:      1e-6,
	ropeBase:     10000,
	ropeFraction: 1,
	freeHeadDim:  true,
	input: []tensorDef{
		t("token_embd.weight", normal, dEmbd, dVocab),
	},
	block: []tensorDef{
		t("attn_norm.weight", ones, dEmbd),
		t("attn_q.weight", normal, dEmbd, dQ),
		t("attn_k.weight", normal, dEmbd, dKV),
		t("attn_v.weight", normal, dEmbd, dKV),
		t("attn_output.weight", normal, dQ, dEmbd),
		t("post_attention_norm.weight", ones, dEmbd),
		t("ffn_norm.weight", ones, dEmbd),
		t("ffn_gate.weight", normal, dEmbd, dFF),
		t("ffn_up.weight", normal, dEmbd, dFF),
		t("ffn_down.weight", normal, dFF, dEmbd),
		t("post_ffw_norm.weight", ones, dEmbd),
	},
	output: []tensorDef{
		t("output_norm.weight", ones, dEmbd),
	},
	keys: func(s Spec, m *gguf.Metadata) {
		// Gemma 2's published values.
		m.Set("gemma2.attention.sliding_window", gguf.ValueOf(uint32(min(s.Context, 4096))))
		m.Set("gemma2.attn_logit_softcapping", gguf.ValueOf(float32(50)))
		m.Set("gemma2.final_logit_softcapping", gguf.ValueOf(float32(30)))
	},
}
