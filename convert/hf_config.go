package convert

import (
	"encoding/json"
	"io"

	"github.com/ecotune/ecotune/gguf"
)

// hfClass is the transformers class ExportHF names for each architecture.
var hfClass = map[string]string{
	"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "phi3": "Phi3ForCausalLM",
	"phi2": "PhiForCausalLM", "gemma2": "Gemma2ForCausalLM",
}

// hfConfigOf writes config.json from a GGUF model's metadata: the inverse of
// each architecture's keys.
func hfConfigOf(f *gguf.File, a *arch, h *hparams, v *ggufVocab) map[string]any {
	p := a.name + "."
	float := func(k string, def float64) float64 {
		if x, err := f.Meta.Float(p + k); err == nil {
			return x
		}
		return def
	}
	c := map[string]any{
		"architectures":           []string{hfClass[a.name]},
		"model_type":              a.modelType,
		"hidden_size":             h.embd,
		"intermediate_size":       h.ff,
		"num_hidden_layers":       h.layers,
		"num_attention_heads":     h.heads,
		"num_key_value_heads":     h.headsKV,
		"vocab_size":              h.vocab,
		"tie_word_embeddings":     h.tied,
		"rope_theta":              float("rope.freq_base", 10000),
		"initializer_range":       0.02,
		"use_cache":               true,
		"attention_dropout":       0.0,
		"max_position_embeddings": max(h.context, 1),
	}
	if h.headDimSet || a.name == "gemma2" {
		c["head_dim"] = h.headDim
	}
	for _, s := range []string{"bos", "eos", "pad"} {
		if id, ok := v.ids[s]; ok {
			c[s+"_token_id"] = id
		}
	}
	rms := float("attention.layer_norm_rms_epsilon", 1e-6)
	ropeDim, _ := f.Meta.Int(p + "rope.dimension_count")
	switch a.name {
	case "llama":
		c["rms_norm_eps"], c["hidden_act"] = rms, "silu"
		c["attention_bias"], c["mlp_bias"] = false, false
	case "qwen2":
		c["rms_norm_eps"], c["hidden_act"] = rms, "silu"
		c["use_sliding_window"] = false
	case "phi3":
		c["rms_norm_eps"], c["hidden_act"] = rms, "silu"
		if orig, err := f.Meta.Int(p + "rope.scaling.original_context_length"); err == nil {
			c["original_max_position_embeddings"] = orig
		}
		if sw, err := f.Meta.Int(p + "attention.sliding_window"); err == nil && sw > 0 {
			c["sliding_window"] = sw
		} else {
			c["sliding_window"] = nil
		}
		if ropeDim > 0 && int(ropeDim) != h.headDim {
			c["partial_rotary_factor"] = float64(ropeDim) / float64(h.headDim)
		}
	case "phi2":
		c["layer_norm_eps"] = float("attention.layer_norm_epsilon", 1e-5)
		c["hidden_act"] = "gelu_new"
		c["qk_layernorm"] = false
		if ropeDim > 0 {
			c["partial_rotary_factor"] = float64(ropeDim) / float64(h.headDim)
		}
	case "gemma2":
		c["rms_norm_eps"] = rms
		c["hidden_act"], c["hidden_activation"] = "gelu_pytorch_tanh", "gelu_pytorch_tanh"
		// llama.cpp scales queries by 1/sqrt(head_dim) except for the 27B shape.
		c["query_pre_attn_scalar"] = h.headDim
		c["attn_logit_softcapping"] = float("attn_logit_softcapping", 50)
		c["final_logit_softcapping"] = float("final_logit_softcapping", 30)
		sw, _ := f.Meta.Int(p + "attention.sliding_window")
		c["sliding_window"] = sw
	}
	return c
}

// newJSONEncoder writes JSON without escaping <, > and & (tokens such as
// <|im_start|> stay readable).
func newJSONEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}
