package trainer

import (
	"fmt"
	"math"

	"github.com/ecotune/ecotune/gguf"
)

// HParams are the hyper-parameters of a model as its GGUF metadata states them.
type HParams struct {
	Arch       string  // general.architecture
	Vocab      int     // vocabulary size (token_embd rows)
	Embd       int     // embedding_length
	Layers     int     // block_count
	Heads      int     // attention.head_count
	HeadsKV    int     // attention.head_count_kv (Heads if absent)
	HeadDim    int     // attention.key_length, or Embd/Heads
	FF         int     // feed_forward_length
	NormEps    float32 // attention.layer_norm_rms_epsilon (or layer_norm_epsilon)
	RopeDims   int     // rope.dimension_count, or HeadDim
	RopeBase   float32 // rope.freq_base, 10000 if absent
	RopeScale  float32 // 1 / rope.scaling.factor (or rope.scale_linear), 1 if absent or rope.scaling.type is none
	ContextLen int     // context_length

	RopeAttnFactor  float32 // rope.scaling.attn_factor: LongRoPE's scale of cos and sin; 0 if absent (meaning 1)
	RopeOrigContext int     // rope.scaling.original_context_length: LongRoPE's long factors apply beyond it; 0 if absent (meaning ContextLen)

	// Read by the architectures that have them (Arch.ReadHParams); zero elsewhere.
	SlidingWindow int     // attention.sliding_window: a SWA layer's query sees this many positions, itself included
	SWA           []bool  // per layer: attention is sliding-window
	RopeBaseSWA   float32 // rope.freq_base_swa: θ of the SWA layers
	AttnSoftcap   float32 // attn_logit_softcapping: scores become c·tanh(score/c)
	FinalSoftcap  float32 // final_logit_softcapping: logits become c·tanh(logit/c)
}

// maxDim bounds every dimension read from a file, so a hostile file cannot make us
// allocate absurd graphs before a shape check fails.
const maxDim = 1 << 24

func readHParams(meta *gguf.Metadata) (HParams, error) {
	var hp HParams
	arch, err := meta.String("general.architecture")
	if err != nil {
		return hp, fmt.Errorf("reading architecture: %w", err)
	}
	hp.Arch = arch
	key := func(k string) string { return arch + "." + k }
	geti := func(k string, dst *int, def int) error {
		v, err := meta.Int(key(k))
		if err != nil {
			if !meta.Has(key(k)) && def >= 0 {
				*dst = def
				return nil
			}
			return fmt.Errorf("reading %s: %w", key(k), err)
		}
		if v < 1 || v > maxDim {
			return fmt.Errorf("%s = %d is out of range [1, %d]", key(k), v, maxDim)
		}
		*dst = int(v)
		return nil
	}
	getf := func(k string, def float64) (float64, error) {
		if !meta.Has(key(k)) {
			return def, nil
		}
		v, err := meta.Float(key(k))
		if err != nil {
			return 0, fmt.Errorf("reading %s: %w", key(k), err)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
			return 0, fmt.Errorf("%s = %g must be positive and finite", key(k), v)
		}
		return v, nil
	}
	for _, f := range []struct {
		k   string
		dst *int
		def int
	}{
		{"embedding_length", &hp.Embd, -1},
		{"block_count", &hp.Layers, -1},
		{"attention.head_count", &hp.Heads, -1},
		{"feed_forward_length", &hp.FF, -1},
		{"context_length", &hp.ContextLen, 2048},
	} {
		if err := geti(f.k, f.dst, f.def); err != nil {
			return hp, err
		}
	}
	if err := geti("attention.head_count_kv", &hp.HeadsKV, hp.Heads); err != nil {
		return hp, err
	}
	if hp.Embd%hp.Heads != 0 && !meta.Has(key("attention.key_length")) {
		return hp, fmt.Errorf("embedding_length %d is not a multiple of head_count %d", hp.Embd, hp.Heads)
	}
	if err := geti("attention.key_length", &hp.HeadDim, hp.Embd/max(hp.Heads, 1)); err != nil {
		return hp, err
	}
	if err := geti("rope.dimension_count", &hp.RopeDims, hp.HeadDim); err != nil {
		return hp, err
	}
	if hp.Heads%hp.HeadsKV != 0 {
		return hp, fmt.Errorf("head_count %d is not a multiple of head_count_kv %d", hp.Heads, hp.HeadsKV)
	}
	if hp.RopeDims > hp.HeadDim || hp.RopeDims%2 != 0 {
		return hp, fmt.Errorf("rope.dimension_count %d must be even and at most the head size %d", hp.RopeDims, hp.HeadDim)
	}
	epsKey := "attention.layer_norm_rms_epsilon"
	if !meta.Has(key(epsKey)) {
		epsKey = "attention.layer_norm_epsilon"
	}
	eps, err := getf(epsKey, 1e-5)
	if err != nil {
		return hp, err
	}
	hp.NormEps = float32(eps)
	base, err := getf("rope.freq_base", 10000)
	if err != nil {
		return hp, err
	}
	hp.RopeBase = float32(base)
	scaling := "linear"
	if meta.Has(key("rope.scaling.type")) {
		if scaling, err = meta.String(key("rope.scaling.type")); err != nil {
			return hp, fmt.Errorf("reading %s: %w", key("rope.scaling.type"), err)
		}
	}
	switch scaling {
	case "linear", "none", "longrope":
	default:
		// YaRN mixes interpolated and extrapolated frequencies and rescales attention
		// by the context size; training on it silently unscaled would be wrong.
		return hp, fmt.Errorf("%s %q is not supported (linear, none and longrope are)", key("rope.scaling.type"), scaling)
	}
	factorKey := "rope.scaling.factor"
	if !meta.Has(key(factorKey)) {
		factorKey = "rope.scale_linear"
	}
	scale, err := getf(factorKey, 1)
	if err != nil {
		return hp, err
	}
	if scaling == "none" {
		scale = 1
	}
	hp.RopeScale = float32(1 / scale)
	attnFactor, err := getf("rope.scaling.attn_factor", 1)
	if err != nil {
		return hp, err
	}
	if meta.Has(key("rope.scaling.attn_factor")) {
		hp.RopeAttnFactor = float32(attnFactor)
	}
	if meta.Has(key("rope.scaling.original_context_length")) {
		if err := geti("rope.scaling.original_context_length", &hp.RopeOrigContext, -1); err != nil {
			return hp, err
		}
	}
	return hp, nil
}
