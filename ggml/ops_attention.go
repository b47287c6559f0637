//go:build cgo

package ggml

/*
#include "ggml.h"
*/
import "C"

// SoftMax returns softmax(a·scale + mask) over each row. mask (F32 or F16, optional) is
// [n, ≥rows, …] and broadcasts over a's dims 2 and 3; maxBias > 0 adds ALiBi slopes.
func (c *Context) SoftMax(a, mask *Tensor, scale, maxBias float32) *Tensor {
	sameCtx("soft_max", c, a, mask)
	needContiguous("soft_max", a)
	var m *C.struct_ggml_tensor
	if mask != nil {
		x, y := ne4(a), ne4(mask)
		if (mask.Type() != TypeF32 && mask.Type() != TypeF16) || !mask.IsContiguous() ||
			y[0] != x[0] || y[1] < x[1] || x[2]%y[2] != 0 || x[3]%y[3] != 0 {
			opErrorf("soft_max", "mask %s does not fit %s", mask, a)
		}
		m = mask.p
	} else if maxBias > 0 {
		opErrorf("soft_max", "ALiBi (maxBias > 0) needs a mask")
	}
	return c.wrap(C.ggml_soft_max_ext(c.reserve("soft_max", 1), a.p, m, C.float(scale), C.float(maxBias)))
}

// DiagMaskInf sets the elements above the diagonal (column > row + past) to -inf: the
// causal mask.
func (c *Context) DiagMaskInf(a *Tensor, past int) *Tensor {
	sameCtx("diag_mask_inf", c, a)
	return c.wrap(C.ggml_diag_mask_inf(c.reserve("diag_mask_inf", 1), a.p, C.int(past)))
}

// FlashAttn computes softmax(q·kᵀ·scale + mask)·v in one fused op.
// q [d, n_q, n_head, b], k [d, n_kv, n_head_kv, b], v [d_v, n_kv, n_head_kv, b],
// mask F16 [n_kv, n_q_padded, 1, 1] (optional); result [d_v, n_head, n_q, b].
func (c *Context) FlashAttn(q, k, v, mask *Tensor, scale, maxBias, softcap float32) *Tensor {
	sameCtx("flash_attn_ext", c, q, k, v, mask)
	qn, kn, vn := ne4(q), ne4(k), ne4(v)
	if kn[0] != qn[0] || qn[2]%kn[2] != 0 || qn[3]%kn[3] != 0 || qn[3] != vn[3] || vn[1] != kn[1] || vn[2] != kn[2] {
		opErrorf("flash_attn_ext", "q %s, k %s, v %s do not fit", q, k, v)
	}
	var m *C.struct_ggml_tensor
	if mask != nil {
		mn := ne4(mask)
		if mask.Type() != TypeF16 || !mask.IsContiguous() || mn[0] != kn[1] || mn[1] < qn[1] || qn[2]%mn[2] != 0 || qn[3]%mn[3] != 0 {
			opErrorf("flash_attn_ext", "mask %s must be f16 [n_kv=%d, ≥%d, …]", mask, kn[1], qn[1])
		}
		m = mask.p
	} else if maxBias > 0 {
		opErrorf("flash_attn_ext", "ALiBi (maxBias > 0) needs a mask")
	}
	return c.wrap(C.ggml_flash_attn_ext(c.reserve("flash_attn_ext", 1), q.p, k.p, v.p, m, C.float(scale), C.float(maxBias), C.float(softcap)))
}
