//go:build cgo

package ggml

/*
#include "ggml.h"
*/
import "C"

// RoPE modes: Normal rotates adjacent pairs (Llama as converted to GGUF); NeoX rotates
// the two halves of each head (Qwen2, Phi, Gemma).
const (
	RopeNormal = int(C.GGML_ROPE_TYPE_NORMAL)
	RopeNeoX   = int(C.GGML_ROPE_TYPE_NEOX)
)

// RopeOptions are the rotary-embedding settings of a model.
type RopeOptions struct {
	Dims       int     // rotated dimensions per head (≤ head size; partial rotary if less)
	Mode       int     // RopeNormal or RopeNeoX
	FreqBase   float32 // θ, 10000 for Llama 2
	FreqScale  float32 // 1 unless the context is stretched linearly
	NCtxOrig   int     // training context for YaRN; 0 when unused
	ExtFactor  float32 // YaRN extrapolation mix; 0 when unused
	AttnFactor float32 // 1 unless YaRN
	BetaFast   float32 // YaRN; 32 by convention
	BetaSlow   float32 // YaRN; 1 by convention
}

// Rope rotates a [head_dim, n_head, n_tokens, …] by the positions pos (I32, n_tokens).
// freqFactors (F32, optional) divides each pair's frequency, as Llama 3 uses.
func (c *Context) Rope(a, pos, freqFactors *Tensor, o RopeOptions) *Tensor {
	sameCtx("rope", c, a, pos, freqFactors)
	if pos.Type() != TypeI32 || pos.Ne(1) != 1 || pos.Ne(2) != 1 || pos.Ne(3) != 1 || int64(pos.Ne(0)) != ne4(a)[2] {
		opErrorf("rope", "positions %s must be i32 with one entry per token of %s (dim 2)", pos, a)
	}
	if o.Dims <= 0 || o.Dims > a.Ne(0) || o.Dims%2 != 0 {
		opErrorf("rope", "rotated dims %d must be even and in (0, %d]", o.Dims, a.Ne(0))
	}
	if o.Mode != RopeNormal && o.Mode != RopeNeoX {
		opErrorf("rope", "mode %d is not normal (0) or neox (2)", o.Mode)
	}
	var ff *C.struct_ggml_tensor
	if freqFactors != nil {
		if freqFactors.Type() != TypeF32 || freqFactors.Ne(0) < o.Dims/2 {
			opErrorf("rope", "frequency factors %s must be f32 with ≥ %d entries", freqFactors, o.Dims/2)
		}
		ff = freqFactors.p
	}
	if o.FreqScale == 0 {
		o.FreqScale = 1
	}
	if o.AttnFactor == 0 {
		o.AttnFactor = 1
	}
	return c.wrap(C.ggml_rope_ext(c.reserve("rope", 1), a.p, pos.p, ff, C.int(o.Dims), C.int(o.Mode),
		C.int(o.NCtxOrig), C.float(o.FreqBase), C.float(o.FreqScale), C.float(o.ExtFactor),
		C.float(o.AttnFactor), C.float(o.BetaFast), C.float(o.BetaSlow)))
}
