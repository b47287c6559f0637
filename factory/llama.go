package factory

// llamaArch: pre-norm RMSNorm, rotary embedding over the whole head, grouped
// query attention, SwiGLU MLP (gate, up, down), untied output by default.
var llamaArch = archDef{
	name:         "llama",
	norm:         rmsNorm,
	normEps:      1e-5,
	ropeBase:     10000,
	ropeFraction: 1,
	freeHeadDim:  true,
	fullRope:     true,
	input: []tensorDef{
		t("token_embd.weight", normal, dEmbd, dVocab),
	},
	block: []tensorDef{
		t("attn_norm.weight", ones, dEmbd),
		t("attn_q.weight", normal, dEmbd, dQ),
		t("attn_k.weight", normal, dEmbd, dKV),
		t("attn_v.weight", normal, dEmbd, dKV),
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
