package convert

import (
	"fmt"
	"math"

	"github.com/ecotune/ecotune/gguf"
)

// phi3Arch: fused projections kept fused as in the checkpoint (qkv_proj: Q,
// K, V rows; gate_up_proj: gate rows, then up), NeoX RoPE, and LongRoPE's
// factors as two tensors.
var phi3Arch = arch{
	name:       "phi3",
	classes:    []string{"Phi3ForCausalLM"},
	modelType:  "phi3",
	tiedOutput: true,
	input:      []entry{e("token_embd.weight", "model.embed_tokens.weight", opNone, dVocab, dEmbd)},
	block: []entry{
		e("attn_norm.weight", "input_layernorm.weight", opNone, dEmbd),
		e("attn_qkv.weight", "self_attn.qkv_proj.weight", opNone, dQKV, dEmbd),
		e("attn_output.weight", "self_attn.o_proj.weight", opNone, dEmbd, dQ),
		e("ffn_norm.weight", "post_attention_layernorm.weight", opNone, dEmbd),
		e("ffn_up.weight", "mlp.gate_up_proj.weight", opNone, dFF2, dEmbd),
		e("ffn_down.weight", "mlp.down_proj.weight", opNone, dEmbd, dFF),
	},
	output: []entry{
		e("output_norm.weight", "model.norm.weight", opNone, dEmbd),
		e("output.weight", "lm_head.weight", opNone, dVocab, dEmbd),
	},
	// Phi3's converter writes its own key set, not the common one.
	keys: func(h *hparams, m *gguf.Metadata) error {
		c := h.cfg
		r := c.rope()
		m.Set("phi3.context_length", u32(h.context))
		orig, ok, err := ropeNumber(h, r, "original_max_position_embeddings")
		if err != nil {
			return err
		}
		if !ok {
			orig = float64(h.context)
		}
		m.Set("phi3.rope.scaling.original_context_length", u32(int(orig)))
		m.Set("phi3.embedding_length", u32(h.embd))
		m.Set("phi3.feed_forward_length", u32(h.ff))
		m.Set("phi3.block_count", u32(h.layers))
		m.Set("phi3.attention.head_count", u32(h.heads))
		m.Set("phi3.attention.head_count_kv", u32(h.headsKV))
		eps, err := c.float("rms_norm_eps")
		if err != nil {
			return err
		}
		m.Set("phi3.attention.layer_norm_rms_epsilon", f32(eps))
		dims, err := phi3RopeDims(h)
		if err != nil {
			return err
		}
		m.Set("phi3.rope.dimension_count", u32(dims))
		theta := 10000.0
		if v, ok, err := ropeNumber(h, r, "rope_theta"); err != nil {
			return err
		} else if ok {
			theta = v
		}
		m.Set("phi3.rope.freq_base", f32(theta))
		sw, _, err := c.optInt("sliding_window")
		if err != nil {
			return err
		}
		m.Set("phi3.attention.sliding_window", u32(sw))
		if _, long := r["long_factor"]; long {
			scale := float64(h.context) / orig
			attn := 1.0
			if scale > 1 {
				attn = math.Sqrt(1 + math.Log(scale)/math.Log(orig))
			}
			m.Set("phi3.rope.scaling.attn_factor", f32(attn))
		}
		return nil
	},
	extra: func(h *hparams) ([]extraTensor, error) {
		r := h.cfg.rope()
		if _, ok := r["long_factor"]; !ok {
			return nil, nil
		}
		dims, err := phi3RopeDims(h)
		if err != nil {
			return nil, err
		}
		long, err := floatList(h, r, "long_factor", dims/2)
		if err != nil {
			return nil, err
		}
		short, err := floatList(h, r, "short_factor", dims/2)
		if err != nil {
			return nil, err
		}
		return []extraTensor{{name: "rope_factors_long.weight", values: long}, {name: "rope_factors_short.weight", values: short}}, nil
	},
}

func phi3RopeDims(h *hparams) (int, error) {
	pct := 1.0
	if v, ok, err := ropeNumber(h, h.cfg.rope(), "partial_rotary_factor"); err != nil {
		return 0, err
	} else if ok {
		pct = v
	}
	return int(pct*float64(h.embd)) / h.heads, nil
}

// floatList reads rope_scaling.k as n numbers.
func floatList(h *hparams, r map[string]any, k string, n int) ([]float32, error) {
	xs, ok := r[k].([]any)
	if !ok || len(xs) != n {
		return nil, fmt.Errorf("convert: %s: rope_scaling.%s: want a list of %d numbers (half the rotary dimensions)", h.cfg.path, k, n)
	}
	out := make([]float32, n)
	for i, x := range xs {
		v, _, err := numberOf(h.cfg.path, fmt.Sprintf("rope_scaling.%s[%d]", k, i), x)
		if err != nil {
			return nil, err
		}
		out[i] = float32(v)
	}
	return out, nil
}
