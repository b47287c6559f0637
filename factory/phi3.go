package factory

// phi3Arch: RMSNorm, one fused Q/K/V projection (attn_qkv: Q rows, then K,
// then V), and one fused gate+up projection (ffn_up with 2·n_ff outputs: the
// gate half first, then up, split by llama.cpp's SwiGLU).
var phi3Arch = archDef{
	name:         "phi3",
	norm:         rmsNorm,
	normEps:      1e-5,
	ropeBase:     10000,
	ropeFraction: 1,
	input: []tensorDef{
		t("token_embd.weight", normal, dEmbd, dVocab),
	},
	block: []tensorDef{
		t("attn_norm.weight", ones, dEmbd),
		t("attn_qkv.weight", normal, dEmbd, dQKV),
		t("attn_output.weight", normal, dQ, dEmbd),
		t("ffn_norm.weight", ones, dEmbd),
		t("ffn_up.weight", normal, dEmbd, dFF2),
		t("ffn_down.weight", normal, dFF, dEmbd),
	},
	output: []tensorDef{
		t("output_norm.weight", ones, dEmbd),
		t("output.weight", normal, dEmbd, dVocab),
	},
	optional: map[string]bool{"output.weight": true},
}
