package export

import (
	"fmt"
	"strconv"
	"strings"
)

// hfModule maps a GGUF block tensor (without "blk.N." and ".weight") to the
// Hugging Face transformers module it was converted from, per architecture:
// the names PEFT uses in target_modules and in its tensor keys. Name maps are
// data; the q/k row order is fixed separately (permute.go).
var hfModules = map[string]map[string]string{
	"llama":  llamaModules,
	"qwen2":  llamaModules,
	"gemma2": llamaModules,
	"phi2": {
		"attn_q":      "self_attn.q_proj",
		"attn_k":      "self_attn.k_proj",
		"attn_v":      "self_attn.v_proj",
		"attn_output": "self_attn.dense",
		"ffn_up":      "mlp.fc1",
		"ffn_down":    "mlp.fc2",
	},
	"phi3": {
		// Fused as in the checkpoint: Q, K, V rows in order; gate rows, then up.
		"attn_qkv":    "self_attn.qkv_proj",
		"attn_output": "self_attn.o_proj",
		"ffn_up":      "mlp.gate_up_proj",
		"ffn_down":    "mlp.down_proj",
	},
}

var llamaModules = map[string]string{
	"attn_q":      "self_attn.q_proj",
	"attn_k":      "self_attn.k_proj",
	"attn_v":      "self_attn.v_proj",
	"attn_output": "self_attn.o_proj",
	"ffn_gate":    "mlp.gate_proj",
	"ffn_up":      "mlp.up_proj",
	"ffn_down":    "mlp.down_proj",
}

// PEFT's key prefixes: the PeftModel wraps the transformers model
// (base_model.model), whose decoder is .model and head is .lm_head.
const (
	peftPrefix = "base_model.model."
	hfLayers   = "model.layers."
	hfLMHead   = "lm_head"
	ggufOutput = "output.weight"
)

// hfName returns the transformers module path of a GGUF weight
// ("blk.3.attn_q.weight" → "model.layers.3.self_attn.q_proj") and its short
// module name for target_modules ("q_proj").
func hfName(arch, gguf string) (path, short string, err error) {
	mods, ok := hfModules[arch]
	if !ok {
		return "", "", fmt.Errorf("architecture %q has no Hugging Face name map (known: llama, qwen2, gemma2, phi2, phi3)", arch)
	}
	if gguf == ggufOutput {
		return hfLMHead, hfLMHead, nil
	}
	rest, ok := strings.CutPrefix(gguf, "blk.")
	layer, rest, ok2 := strings.Cut(rest, ".")
	mod, ok3 := strings.CutSuffix(rest, ".weight")
	if n, err := strconv.Atoi(layer); !ok || !ok2 || !ok3 || err != nil || n < 0 {
		return "", "", fmt.Errorf("tensor %q has no PEFT equivalent (only block weights and output.weight do)", gguf)
	}
	hf, ok := mods[mod]
	if !ok {
		return "", "", fmt.Errorf("tensor %q: %s module %q has no PEFT equivalent", gguf, arch, mod)
	}
	path = hfLayers + layer + "." + hf
	return path, hf[strings.LastIndex(hf, ".")+1:], nil
}

// ggufName is the inverse of hfName: the GGUF weight of a transformers module path.
func ggufName(arch, path string) (string, error) {
	mods, ok := hfModules[arch]
	if !ok {
		return "", fmt.Errorf("architecture %q has no Hugging Face name map (known: llama, qwen2, gemma2, phi2, phi3)", arch)
	}
	if path == hfLMHead {
		return ggufOutput, nil
	}
	rest, ok := strings.CutPrefix(path, hfLayers)
	layer, hf, ok2 := strings.Cut(rest, ".")
	if n, err := strconv.Atoi(layer); !ok || !ok2 || err != nil || n < 0 || strconv.Itoa(n) != layer {
		return "", fmt.Errorf("module %q is not a decoder layer's module or lm_head", path)
	}
	for mod, h := range mods {
		if h == hf {
			return "blk." + layer + "." + mod + ".weight", nil
		}
	}
	return "", fmt.Errorf("module %q: %s has no GGUF tensor for %q", path, arch, hf)
}
