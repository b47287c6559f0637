package convert

import (
	"fmt"
	"math"

	"github.com/ecotune/ecotune/gguf"
)

// Rope scaling types as llama.cpp names them in %s.rope.scaling.type.
const (
	ropeLinear   = "linear"
	ropeYarn     = "yarn"
	ropeLongrope = "longrope"
)

func u32(v int) gguf.Value     { return gguf.ValueOf(uint32(v)) }
func f32(v float64) gguf.Value { return gguf.ValueOf(float32(v)) }

// commonKeys writes the hyper-parameters llama.cpp's converter writes for
// every text model (TextModel.set_gguf_parameters), in its order.
func commonKeys(a string, h *hparams, m *gguf.Metadata) error {
	c := h.cfg
	p := a + "."
	m.Set(p+"block_count", u32(h.layers))
	if h.context > 0 {
		m.Set(p+"context_length", u32(h.context))
	}
	m.Set(p+"embedding_length", u32(h.embd))
	m.Set(p+"feed_forward_length", u32(h.ff))
	m.Set(p+"attention.head_count", u32(h.heads))
	m.Set(p+"attention.head_count_kv", u32(h.headsKV))
	if err := ropeScalingKeys(a, h, m); err != nil {
		return err
	}
	if err := ropeThetaKey(a, h, m); err != nil {
		return err
	}
	if eps, ok, err := c.optFloat("rms_norm_eps", "norm_eps"); err != nil {
		return err
	} else if ok {
		m.Set(p+"attention.layer_norm_rms_epsilon", f32(eps))
	}
	if eps, ok, err := c.optFloat("layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"); err != nil {
		return err
	} else if ok {
		m.Set(p+"attention.layer_norm_epsilon", f32(eps))
	}
	headDimKeys(a, h, m)
	return nil
}

func headDimKeys(a string, h *hparams, m *gguf.Metadata) {
	if h.headDimSet {
		m.Set(a+".attention.key_length", u32(h.headDim))
		m.Set(a+".attention.value_length", u32(h.headDim))
	}
}

func ropeThetaKey(a string, h *hparams, m *gguf.Metadata) error {
	r := h.cfg.rope()
	if v, ok := r["rope_theta"]; ok {
		theta, _, err := numberOf(h.cfg.path, "rope_theta", v)
		if err != nil {
			return err
		}
		m.Set(a+".rope.freq_base", f32(theta))
	}
	return nil
}

// ropeScalingKeys writes linear and YaRN scaling; llama3's becomes a
// rope_freqs tensor (llamaExtra) and phi3's longrope two factor tensors.
func ropeScalingKeys(a string, h *hparams, m *gguf.Metadata) error {
	r := h.cfg.rope()
	typ, _ := r["rope_type"].(string)
	factor, hasFactor, err := ropeNumber(h, r, "factor")
	if err != nil {
		return err
	}
	p := a + ".rope.scaling."
	switch typ {
	case "", "default":
	case ropeLinear:
		if hasFactor {
			m.Set(p+"type", gguf.ValueOf(ropeLinear))
			m.Set(p+"factor", f32(factor))
		}
	case ropeYarn:
		if hasFactor {
			orig, ok, err := ropeNumber(h, r, "original_max_position_embeddings")
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("convert: %s: rope_scaling: yarn needs original_max_position_embeddings", h.cfg.path)
			}
			m.Set(p+"type", gguf.ValueOf(ropeYarn))
			m.Set(p+"factor", f32(factor))
			m.Set(p+"original_context_length", u32(int(orig)))
		}
	case "su", ropeLongrope:
		m.Set(p+"type", gguf.ValueOf(ropeLongrope))
	case "llama3":
		// A tensor, not keys: see llamaExtra.
	default:
		return fmt.Errorf("convert: %s: rope_scaling type %q is not supported (linear, yarn, llama3, longrope are)", h.cfg.path, typ)
	}
	return nil
}

func ropeNumber(h *hparams, r map[string]any, k string) (float64, bool, error) {
	v, ok := r[k]
	if !ok || v == nil {
		return 0, false, nil
	}
	return numberOf(h.cfg.path, "rope_scaling."+k, v)
}

// llama3RopeFactors computes the per-frequency divisors of Llama 3.1's rope
// scaling, the rope_freqs.weight tensor llama.cpp multiplies into RoPE.
func llama3RopeFactors(h *hparams, dim int) ([]float32, bool, error) {
	r := h.cfg.rope()
	if t, _ := r["rope_type"].(string); t != "llama3" {
		return nil, false, nil
	}
	get := func(k string, def float64) (float64, error) {
		v, ok, err := ropeNumber(h, r, k)
		if !ok {
			return def, err
		}
		return v, err
	}
	base, err := get("rope_theta", 10000)
	if err != nil {
		return nil, false, err
	}
	factor, err := get("factor", 8)
	if err != nil {
		return nil, false, err
	}
	low, err := get("low_freq_factor", 1)
	if err != nil {
		return nil, false, err
	}
	high, err := get("high_freq_factor", 4)
	if err != nil {
		return nil, false, err
	}
	old, err := get("original_max_position_embeddings", 8192)
	if err != nil {
		return nil, false, err
	}
	lowWave, highWave := old/low, old/high
	out := make([]float32, 0, dim/2)
	for i := 0; i < dim; i += 2 {
		// The converter computes the frequencies in float32 (torch), so do we.
		freq := float64(float32(1 / math.Pow(base, float64(float32(i)/float32(dim)))))
		wave := 2 * math.Pi / freq
		switch {
		case wave < highWave:
			out = append(out, 1)
		case wave > lowWave:
			out = append(out, float32(factor))
		default:
			smooth := (old/wave - low) / (high - low)
			out = append(out, float32(1/((1-smooth)/factor+smooth)))
		}
	}
	return out, true, nil
}
