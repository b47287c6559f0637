package factory

// qwen2Arch: llama's layout plus biases on the Q, K and V projections, RMSNorm
// epsilon 1e-6 and rope base 1e6.
var qwen2Arch = archDef{
	name:         "qwen2",
	norm:         rmsNorm,
	normEps:      1e-6,
	ropeBase:     1e6,
	ropeFraction: 1,
	input: []tensorDef{
		t("token_embd.weight", normal, dEmbd, dVocab),
	},
	block: []tensorDef{
		t("attn_norm.weight", ones, dEmbd),
		t("attn_q.weight", normal, dEmbd, dQ),
		t("attn_q.bias", zeros, dQ),
		t("attn_k.weight", normal, dEmbd, dKV),
		t("attn_k.bias", zeros, dKV),
		t("attn_v.weight", normal, dEmbd, dKV),
		t("attn_v.bias", zeros, dKV),
		t("attn_output.weight", normal, dQ, dEmbd),
		t("ffn_norm.weight", ones, dEmbd),
		t("ffn_gate.weight", normal, dEmbd, dFF),
		t("ffn_down.weight", normal, dFF, dEmbd),
		t("ffn_up.weight", normal, dEmbd, dFF),
	},
	output: []tensorDef{
		t("output_norm.weight", ones, dEmbd),
		t("output.weight", normal, dEmbd, dVocab),
	},
	optional: map[string]bool{"output.weight": true},
}
