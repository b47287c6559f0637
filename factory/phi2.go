package factory

// phi2Arch: one LayerNorm (with bias) feeding attention and MLP in parallel,
// rotary embedding over part of each head (phi-2 rotates 32 of 80 dims; the
// default here is half), a GELU MLP (up, down) with biases, and an output
// matrix with a bias.
var phi2Arch = archDef{
	name:         "phi2",
	norm:         layerNorm,
	normEps:      1e-5,
	ropeBase:     10000,
	ropeFraction: 0.5,
	input: []tensorDef{
		t("token_embd.weight", normal, dEmbd, dVocab),
	},
	block: []tensorDef{
		t("attn_norm.weight", ones, dEmbd),
		t("attn_norm.bias", zeros, dEmbd),
		t("attn_q.weight", normal, dEmbd, dQ),
		t("attn_q.bias", zeros, dQ),
		t("attn_k.weight", normal, dEmbd, dKV),
		t("attn_k.bias", zeros, dKV),
		t("attn_v.weight", normal, dEmbd, dKV),
		t("attn_v.bias", zeros, dKV),
		t("attn_output.weight", normal, dQ, dEmbd),
		t("attn_output.bias", zeros, dEmbd),
		t("ffn_up.weight", normal, dEmbd, dFF),
		t("ffn_up.bias", zeros, dFF),
		t("ffn_down.weight", normal, dFF, dEmbd),
		t("ffn_down.bias", zeros, dEmbd),
	},
	output: []tensorDef{
		t("output_norm.weight", ones, dEmbd),
		t("output_norm.bias", zeros, dEmbd),
		t("output.weight", normal, dEmbd, dVocab),
		t("output.bias", zeros, dVocab),
	},
}
