package convert_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/safetensors"
)

// This file builds tiny Hugging Face checkpoints in float64 directly, in
// transformers' own layout (q/k rows in rotate_half order, phi3's fused
// qkv_proj and gate_up_proj, gemma2's norms without the +1), and computes
// their logits in float64 the way transformers' modeling files do. Nothing
// here uses the convert package, so a layout mistake made the same way in
// Convert and ExportHF cannot hide.

// hfModel is a checkpoint: config.json's values and float64 tensors.
type hfModel struct {
	arch                        string // llama, qwen2, phi3, phi2, gemma2
	class                       string
	embd, layers, heads, kv, ff int
	vocab, headDim              int
	eps, theta                  float64
	rotary                      float64 // share of each head that is rotated (phi2)
	tied                        bool
	llama3                      map[string]float64 // rope_scaling of type llama3, if any
	longShort                   []float64          // phi3 LongRoPE short factors (the ones used within the original context)
	longLong                    []float64          // and the long ones
	ropeAttn                    float64            // LongRoPE's attention factor on cos and sin (1 without)
	attnCap, finalCap           float64            // gemma2 soft-caps
	window                      int                // gemma2 sliding window
	w                           map[string][]float64
	shape                       map[string][]int64
}

func newHFModel(arch string, seed uint64) *hfModel {
	m := &hfModel{arch: arch, embd: 64, layers: 2, heads: 4, kv: 2, ff: 96, vocab: 32000, eps: 1e-5, theta: 10000, rotary: 1,
		ropeAttn: 1, w: map[string][]float64{}, shape: map[string][]int64{}}
	switch arch {
	case "llama":
		m.class = "LlamaForCausalLM"
		m.llama3 = map[string]float64{"factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 32}
	case "qwen2":
		m.class, m.tied, m.theta = "Qwen2ForCausalLM", true, 1e6
	case "phi3":
		m.class, m.vocab = "Phi3ForCausalLM", 32064 // llama.cpp's phi3 loader wants Phi-3's own tokens
	case "phi3-longrope":
		m.arch, m.class, m.vocab = "phi3", "Phi3ForCausalLM", 32064
		// max_position_embeddings 2048 over an original 512: scale 4, and the factor
		// transformers (and llama.cpp's converter) derive from it.
		m.ropeAttn = math.Sqrt(1 + math.Log(4)/math.Log(512))
		for i := range 8 {
			m.longShort = append(m.longShort, 1+0.25*float64(i))
			m.longLong = append(m.longLong, 2+float64(i))
		}
	case "phi2":
		m.class, m.kv, m.ff, m.rotary, m.vocab = "PhiForCausalLM", 4, 128, 0.5, 50257
	case "gemma2":
		m.class, m.tied, m.eps, m.attnCap, m.finalCap, m.window = "Gemma2ForCausalLM", true, 1e-6, 0.5, 3, 4
	}
	arch = m.arch
	m.headDim = m.embd / m.heads
	r := rand.New(rand.NewPCG(seed, 99))
	mat := func(name string, rows, cols int, std float64) {
		x := make([]float64, rows*cols)
		for i := range x {
			x[i] = std * r.NormFloat64()
		}
		m.w[name], m.shape[name] = x, []int64{int64(rows), int64(cols)}
	}
	vec := func(name string, n int, mean, std float64) {
		x := make([]float64, n)
		for i := range x {
			x[i] = mean + std*r.NormFloat64()
		}
		m.w[name], m.shape[name] = x, []int64{int64(n)}
	}
	E, Q, KV, F := m.embd, m.heads*m.headDim, m.kv*m.headDim, m.ff
	normMean := 1.0
	if arch == "gemma2" {
		normMean = 0 // Gemma's RMSNorm multiplies by 1 + weight
	}
	mat("model.embed_tokens.weight", m.vocab, E, 1)
	for l := range m.layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		vec(p+"input_layernorm.weight", E, normMean, 0.1)
		switch arch {
		case "phi3":
			mat(p+"self_attn.qkv_proj.weight", Q+2*KV, E, 0.15)
			mat(p+"mlp.gate_up_proj.weight", 2*F, E, 0.15)
		default:
			mat(p+"self_attn.q_proj.weight", Q, E, 0.15)
			mat(p+"self_attn.k_proj.weight", KV, E, 0.15)
			mat(p+"self_attn.v_proj.weight", KV, E, 0.15)
		}
		switch arch {
		case "phi2":
			vec(p+"input_layernorm.bias", E, 0, 0.1)
			for _, s := range []string{"q_proj", "k_proj", "v_proj"} {
				vec(p+"self_attn."+s+".bias", int(m.shape[p+"self_attn."+s+".weight"][0]), 0, 0.1)
			}
			mat(p+"self_attn.dense.weight", E, Q, 0.15)
			vec(p+"self_attn.dense.bias", E, 0, 0.1)
			mat(p+"mlp.fc1.weight", F, E, 0.15)
			vec(p+"mlp.fc1.bias", F, 0, 0.1)
			mat(p+"mlp.fc2.weight", E, F, 0.15)
			vec(p+"mlp.fc2.bias", E, 0, 0.1)
			continue
		case "qwen2":
			vec(p+"self_attn.q_proj.bias", Q, 0, 0.1)
			vec(p+"self_attn.k_proj.bias", KV, 0, 0.1)
			vec(p+"self_attn.v_proj.bias", KV, 0, 0.1)
		}
		mat(p+"self_attn.o_proj.weight", E, Q, 0.15)
		vec(p+"post_attention_layernorm.weight", E, normMean, 0.1)
		if arch != "phi3" {
			mat(p+"mlp.gate_proj.weight", F, E, 0.15)
			mat(p+"mlp.up_proj.weight", F, E, 0.15)
		}
		mat(p+"mlp.down_proj.weight", E, F, 0.15)
		if arch == "gemma2" {
			vec(p+"pre_feedforward_layernorm.weight", E, 0, 0.1)
			vec(p+"post_feedforward_layernorm.weight", E, 0, 0.1)
		}
	}
	if arch == "phi2" {
		vec("model.final_layernorm.weight", E, 1, 0.1)
		vec("model.final_layernorm.bias", E, 0, 0.1)
		mat("lm_head.weight", m.vocab, E, 0.15)
		vec("lm_head.bias", m.vocab, 0, 0.1)
	} else {
		vec("model.norm.weight", E, normMean, 0.1)
		if !m.tied {
			mat("lm_head.weight", m.vocab, E, 0.15)
		}
	}
	return m
}

// config is the checkpoint's config.json.
func (m *hfModel) config() map[string]any {
	c := map[string]any{
		"architectures": []string{m.class}, "hidden_size": m.embd, "num_hidden_layers": m.layers,
		"num_attention_heads": m.heads, "num_key_value_heads": m.kv, "intermediate_size": m.ff,
		"vocab_size": m.vocab, "max_position_embeddings": 128, "rope_theta": m.theta,
		"tie_word_embeddings": m.tied, "torch_dtype": "float64",
	}
	switch m.arch {
	case "phi2":
		c["layer_norm_eps"], c["partial_rotary_factor"], c["hidden_act"] = m.eps, m.rotary, "gelu_new"
	case "gemma2":
		c["rms_norm_eps"], c["head_dim"], c["query_pre_attn_scalar"] = m.eps, m.headDim, m.headDim
		c["attn_logit_softcapping"], c["final_logit_softcapping"], c["sliding_window"] = m.attnCap, m.finalCap, m.window
		c["hidden_activation"] = "gelu_pytorch_tanh"
	default:
		c["rms_norm_eps"] = m.eps
	}
	if m.longShort != nil {
		c["max_position_embeddings"], c["original_max_position_embeddings"] = 2048, 512
		c["rope_scaling"] = map[string]any{"type": "longrope", "short_factor": m.longShort, "long_factor": m.longLong}
	}
	if m.llama3 != nil {
		rs := map[string]any{"rope_type": "llama3"}
		for k, v := range m.llama3 {
			rs[k] = v
		}
		c["rope_scaling"] = rs
	}
	return c
}

// write saves the checkpoint as F64 safetensors, in shards files (with an
// index when more than one), beside config.json.
func (m *hfModel) write(t *testing.T, dir string, shards int) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	raw, err := json.Marshal(m.config())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644))
	var names []string
	for n := range m.w {
		names = append(names, n)
	}
	sort.Strings(names)
	weightMap := map[string]string{}
	for s := range shards {
		file := "model.safetensors"
		if shards > 1 {
			file = fmt.Sprintf("model-%05d-of-%05d.safetensors", s+1, shards)
		}
		var ts []safetensors.Tensor
		for i, n := range names {
			if i%shards != s {
				continue
			}
			b := make([]byte, 8*len(m.w[n]))
			for j, v := range m.w[n] {
				binary.LittleEndian.PutUint64(b[8*j:], math.Float64bits(v))
			}
			ts = append(ts, safetensors.Tensor{Name: n, DType: safetensors.F64, Shape: m.shape[n], Data: b})
			weightMap[n] = file
		}
		require.NoError(t, safetensors.WriteFile(filepath.Join(dir, file), ts, nil))
	}
	if shards > 1 {
		raw, err := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": weightMap})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), raw, 0o644))
	}
}

// writeSPMFrom writes dir/tokenizer.model holding the pieces of a llama.cpp
// SentencePiece vocabulary, encoded here from sentencepiece_model.proto's
// field numbers (pieces = 1: piece 1, score 2, type 3).
func writeSPMFrom(t *testing.T, vocabPath, dir string) {
	t.Helper()
	f, err := gguf.Open(vocabPath)
	require.NoError(t, err)
	defer f.Close()
	toks, err := f.Meta.Strings("tokenizer.ggml.tokens")
	require.NoError(t, err)
	scores, err := f.Meta.Float32s("tokenizer.ggml.scores")
	require.NoError(t, err)
	types, err := f.Meta.Int32s("tokenizer.ggml.token_type")
	require.NoError(t, err)
	var out []byte
	for i, tok := range toks {
		var p []byte
		p = append(binary.AppendUvarint(append(p, 1<<3|2), uint64(len(tok))), tok...)
		p = binary.LittleEndian.AppendUint32(append(p, 2<<3|5), math.Float32bits(scores[i]))
		p = binary.AppendUvarint(append(p, 3<<3|0), uint64(types[i]))
		out = append(binary.AppendUvarint(append(out, 1<<3|2), uint64(len(p))), p...)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer.model"), out, 0o644))
	cfg := `{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": true, "add_eos_token": false}`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644))
}

// writeBPEFrom writes dir/tokenizer.json for a llama.cpp GPT-2 style
// vocabulary: its tokens and merges, and GPT-2's ByteLevel pre-tokenizer.
func writeBPEFrom(t *testing.T, vocabPath, dir string) {
	t.Helper()
	f, err := gguf.Open(vocabPath)
	require.NoError(t, err)
	defer f.Close()
	toks, err := f.Meta.Strings("tokenizer.ggml.tokens")
	require.NoError(t, err)
	merges, err := f.Meta.Strings("tokenizer.ggml.merges")
	require.NoError(t, err)
	vocab := map[string]int{}
	for i, tok := range toks {
		vocab[tok] = i
	}
	tj := map[string]any{
		"added_tokens":  []any{map[string]any{"id": len(toks) - 1, "content": toks[len(toks)-1], "special": true}},
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	}
	raw, err := json.Marshal(tj)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer.json"), raw, 0o644))
}
