package trainer

import (
	"fmt"
	"math"

	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
)

// archGemma2 is Gemma 2 as llama.cpp converts it: embeddings scaled by √Embd and always
// tied to the output; RMSNorm before and after both attention and the GELU-gated MLP
// (the file's norm weights already include Gemma's +1); RoPE in NeoX order; Q scaled
// before Q·Kᵀ; attention scores and final logits soft-capped with tanh; every other
// layer, starting with the first, attends through a sliding window.
func archGemma2() *Arch {
	return &Arch{
		Name:       "gemma2",
		Norm:       NormRMS,
		RopeMode:   ggml.RopeNeoX,
		EmbedScale: true,
		Globals: []TensorSpec{
			{Name: tokEmbd, Dims: []Dim{DimEmbd, DimVocab}},
			{Name: outputNorm, Dims: []Dim{DimEmbd}},
		},
		Block: append(append([]TensorSpec{
			{Name: "attn_norm.weight", Dims: []Dim{DimEmbd}},
		}, qkvSpecs()...),
			TensorSpec{Name: "attn_output.weight", Dims: []Dim{DimQ, DimEmbd}, LoRA: "attn_output"},
			TensorSpec{Name: "post_attention_norm.weight", Dims: []Dim{DimEmbd}},
			TensorSpec{Name: "ffn_norm.weight", Dims: []Dim{DimEmbd}},
			TensorSpec{Name: "ffn_gate.weight", Dims: []Dim{DimEmbd, DimFF}, LoRA: "ffn_gate"},
			TensorSpec{Name: "ffn_up.weight", Dims: []Dim{DimEmbd, DimFF}, LoRA: "ffn_up"},
			TensorSpec{Name: "ffn_down.weight", Dims: []Dim{DimFF, DimEmbd}, LoRA: "ffn_down"},
			TensorSpec{Name: "post_ffw_norm.weight", Dims: []Dim{DimEmbd}},
		),
		Fused:       fusedQKV,
		Check:       checkQKV,
		ReadHParams: readGemma2HParams,
		Layer: func(b *builder, l int, x *ggml.Tensor) *ggml.Tensor {
			hp := b.m.HP
			// llama.cpp takes Gemma 2 27B's query scale from n_embd/n_head (its
			// query_pre_attn_scalar) and the others' from the head size; it tells
			// the 27B model by its 46 layers.
			qs := 1 / math.Sqrt(float64(hp.HeadDim))
			if hp.Layers == 46 {
				qs = 1 / math.Sqrt(float64(hp.Embd/hp.Heads))
			}
			a := b.attention(l, b.norm(l, "attn_norm", x), attnOpts{qScale: float32(qs), swa: hp.SWA[l]})
			x = b.c.Add(b.norm(l, "post_attention_norm", a), x)
			f := b.ffnGEGLU(l, b.norm(l, "ffn_norm", x))
			return b.c.Add(b.norm(l, "post_ffw_norm", f), x)
		},
	}
}

// readGemma2HParams reads the sliding window (4096 if absent), which layers use it
// (sliding_window_pattern: a period n whose first n-1 layers slide, 2 if absent, or
// one flag per layer), and the soft-caps (50 for scores and 30 for logits if absent),
// with llama.cpp's defaults.
func readGemma2HParams(meta *gguf.Metadata, hp *HParams) error {
	key := func(k string) string { return hp.Arch + "." + k }
	hp.SlidingWindow = 4096
	if meta.Has(key("attention.sliding_window")) {
		v, err := meta.Int(key("attention.sliding_window"))
		if err != nil || v < 1 || v > maxDim {
			return fmt.Errorf("%s = %d must be in [1, %d] (%v)", key("attention.sliding_window"), v, maxDim, err)
		}
		hp.SlidingWindow = int(v)
	}
	hp.SWA = make([]bool, hp.Layers)
	period := int64(2)
	if k := key("attention.sliding_window_pattern"); meta.Has(k) {
		if flags, err := gguf.GetArray[bool](meta, k); err == nil {
			if len(flags) < hp.Layers {
				return fmt.Errorf("%s has %d flags for %d layers", k, len(flags), hp.Layers)
			}
			copy(hp.SWA, flags)
			period = -1
		} else if period, err = meta.Int(k); err != nil || period < 0 {
			return fmt.Errorf("%s must be a period ≥ 0 or one flag per layer (%v)", k, err)
		}
	}
	for l := range hp.SWA {
		if period >= 0 {
			hp.SWA[l] = period == 0 || int64(l)%period < period-1
		}
	}
	hp.AttnSoftcap, hp.FinalSoftcap, hp.RopeBaseSWA = 50, 30, hp.RopeBase
	for k, dst := range map[string]*float32{
		"attn_logit_softcapping":  &hp.AttnSoftcap,
		"final_logit_softcapping": &hp.FinalSoftcap,
		"rope.freq_base_swa":      &hp.RopeBaseSWA,
	} {
		if !meta.Has(key(k)) {
			continue
		}
		v, err := meta.Float(key(k))
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("%s = %g must be positive and finite (%v)", key(k), v, err)
		}
		*dst = float32(v)
	}
	return nil
}
