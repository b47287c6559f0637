//go:build cgo

package ggml

/*
#include "ggml.h"
#include <string.h>
#include "attention.h"

// ecotune_attn_op makes one of attention.c's ops: 0 forward, 1 back_kv, 2 back_q.
static struct ggml_tensor * ecotune_attn_op(struct ggml_context * ctx, int which,
		struct ggml_tensor ** args, int n_args, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3,
		struct ecotune_attn_params p) {
	// The starts, if any, come last.
	p.starts = p.starts < 0 ? -1 : n_args - 1;
	ggml_custom_op_t f = which == 0 ? ecotune_attn_fwd : which == 1 ? ecotune_attn_back_kv : ecotune_attn_back_q;
	struct ggml_tensor * t = ggml_custom_4d(ctx, GGML_TYPE_F32, ne0, ne1, ne2, ne3, args, n_args, f, GGML_N_TASKS_MAX, NULL);
	ecotune_attn_set_params(t, p);
	return t;
}

static int ecotune_attn_is_fwd(const struct ggml_tensor * t) {
	if (t == NULL || t->op != GGML_OP_CUSTOM) return 0;
	ggml_custom_op_t f;
	memcpy(&f, t->op_params, sizeof f);
	return f == ecotune_attn_fwd;
}
*/
import "C"

import "unsafe"

// AttentionOptions describe the scores CausalAttention takes the softmax of: for query
// i and key j ≤ i, Scale·PreScale·(q·k), or with a soft cap c > 0,
// Scale·c·tanh(PreScale·(q·k)/c) (Gemma 2). Window > 0 also hides keys j ≤ i-Window
// (sliding-window attention), and Starts hides the keys before each query's start.
// PreScale 0 means 1.
type AttentionOptions struct {
	Scale, PreScale, Softcap float32
	Window                   int
	// Starts, if not nil, is I32 [T·B]: the first key each query may see, for
	// sequences that hold several documents end to end (packing). Along a sequence it
	// must restart at each document's first position and hold there: starts[i] is
	// starts[i-1] or i. The op trusts it; the caller checks it.
	Starts *Tensor
	// Recompute makes CausalAttentionBack compute the score gradients twice instead of
	// keeping them between its two ops: no memory of size T×T, about a third more time.
	// It does so anyway when they would take more than RecomputeAbove bytes.
	Recompute bool
}

// RecomputeAbove is the size of the score gradients (B·H·T²/2 floats) above which
// CausalAttentionBack computes them twice rather than keep them.
const RecomputeAbove = 256 << 20

func (o AttentionOptions) params() C.struct_ecotune_attn_params {
	pre := o.PreScale
	if pre == 0 {
		pre = 1
	}
	starts := C.int32_t(-1)
	if o.Starts != nil {
		starts = 0 // ecotune_attn_op puts the index of the last source here
	}
	return C.struct_ecotune_attn_params{scale: C.float(o.Scale), pre: C.float(pre), softcap: C.float(o.Softcap),
		window: C.int32_t(o.Window), starts: starts}
}

// withStarts appends o's starts to an op's sources.
func (o AttentionOptions) withStarts(args ...*C.struct_ggml_tensor) []*C.struct_ggml_tensor {
	if o.Starts != nil {
		args = append(args, o.Starts.p)
	}
	return args
}

// CausalAttention returns causal self-attention of q [hd, H, T, B] over k and v
// [hd, KV, T, B] (query head h reads KV head h/(H/KV)) as [hd·H, T·B]: softmax over the
// visible keys of each query's scores (see AttentionOptions), times v. It is one fused
// op that the CPU backend runs (other backends hand it to the CPU): it skips the masked
// half of the score matrix and stores no probabilities, only each row's log-sum-exp,
// next to the output, for CausalAttentionBack. Rows of q, k and v must be contiguous.
func (c *Context) CausalAttention(q, k, v *Tensor, o AttentionOptions) *Tensor {
	sameCtx("causal attention", c, q, k, v)
	checkAttention(q, k, v, o)
	hd, H, T, B := q.Ne(0), q.Ne(1), q.Ne(2), q.Ne(3)
	args := o.withStarts(q.p, k.p, v.p)
	ctx := c.reserve("causal attention", 2)
	fwd := C.ecotune_attn_op(ctx, 0, &args[0], C.int(len(args)), C.int64_t(hd*H*T*B+H*T*B), 1, 1, 1, o.params())
	c.wrap(fwd).SetName("attention")
	return c.wrap(C.ggml_view_2d(ctx, fwd, C.int64_t(hd*H), C.int64_t(T*B), C.size_t(4*hd*H), 0))
}

// CausalAttentionBack returns the gradients of CausalAttention's q, k and v (shaped as
// they are) given grad, the gradient of its result out [hd·H, T·B], in two fused CPU
// ops: the first computes dk and dv one key block at a time and keeps the score
// gradients of the visible blocks, which the second multiplies by k for dq; with
// o.Recompute (or past RecomputeAbove) the second computes them again instead.
func (c *Context) CausalAttentionBack(q, k, v, out, grad *Tensor, o AttentionOptions) (dq, dk, dv *Tensor) {
	sameCtx("causal attention back", c, q, k, v, out, grad)
	checkAttention(q, k, v, o)
	hd, H, KV, T, B := q.Ne(0), q.Ne(1), k.Ne(1), q.Ne(2), q.Ne(3)
	fwd := out.ptr().view_src
	if C.ecotune_attn_is_fwd(fwd) == 0 || fwd.src[0] != q.p || fwd.src[1] != k.p || fwd.src[2] != v.p {
		opErrorf("causal attention back", "%s is not CausalAttention's result for these q, k, v", out)
	}
	if grad.Type() != TypeF32 || grad.Ne(0) != hd*H || grad.Ne(1) != T*B || grad.Ne(2) != 1 || grad.Ne(3) != 1 {
		opErrorf("causal attention back", "gradient %s does not fit the output [%d, %d]", grad, hd*H, T*B)
	}
	if grad.p.nb[0] != 4 {
		grad = c.Cont(grad)
	}
	scores := int(C.ecotune_attn_scores_size(C.int64_t(H), C.int64_t(T), C.int64_t(B)))
	recompute := o.Recompute || 4*scores > RecomputeAbove
	n := 2 * hd * KV * T * B
	if !recompute {
		n += scores
	}
	args := o.withStarts(q.p, k.p, v.p, fwd, grad.p)
	ctx := c.reserve("causal attention back", 4)
	kv := C.ecotune_attn_op(ctx, 1, &args[0], C.int(len(args)), C.int64_t(n), 1, 1, 1, o.params())
	c.wrap(kv).SetName("attention back kv")
	size := C.size_t(unsafe.Sizeof(float32(0)))
	nb1, nb2, nb3 := size*C.size_t(hd), size*C.size_t(hd*KV), size*C.size_t(hd*KV*T)
	dk = c.wrap(C.ggml_view_4d(ctx, kv, C.int64_t(hd), C.int64_t(KV), C.int64_t(T), C.int64_t(B), nb1, nb2, nb3, 0))
	dv = c.wrap(C.ggml_view_4d(ctx, kv, C.int64_t(hd), C.int64_t(KV), C.int64_t(T), C.int64_t(B), nb1, nb2, nb3, nb3*C.size_t(B)))
	if recompute {
		dq = c.wrap(C.ecotune_attn_op(ctx, 2, &args[0], C.int(len(args)), C.int64_t(hd), C.int64_t(H), C.int64_t(T), C.int64_t(B), o.params()))
	} else {
		qargs := o.withStarts(k.p, kv)
		dq = c.wrap(C.ecotune_attn_op(ctx, 2, &qargs[0], C.int(len(qargs)), C.int64_t(hd), C.int64_t(H), C.int64_t(T), C.int64_t(B), o.params()))
	}
	return dq.SetName("attention back q"), dk, dv
}

func checkAttention(q, k, v *Tensor, o AttentionOptions) {
	for _, t := range []*Tensor{q, k, v} {
		if t.Type() != TypeF32 || t.p.nb[0] != 4 {
			opErrorf("causal attention", "%s must be F32 with contiguous rows", t)
		}
	}
	qn, kn, vn := ne4(q), ne4(k), ne4(v)
	if kn != vn || qn[0] != kn[0] || qn[2] != kn[2] || qn[3] != kn[3] || kn[1] == 0 || qn[1]%kn[1] != 0 {
		opErrorf("causal attention", "q %s, k %s, v %s do not fit [hd, H, T, B], [hd, KV, T, B] ×2", q, k, v)
	}
	if o.Window < 0 || o.Softcap < 0 || o.Scale == 0 {
		opErrorf("causal attention", "options %+v: need scale ≠ 0, softcap ≥ 0, window ≥ 0", o)
	}
	if s := o.Starts; s != nil && (s.Type() != TypeI32 || !s.IsContiguous() || s.Elements() != int(kn[2]*kn[3])) {
		opErrorf("causal attention", "starts %s must be contiguous I32 with one entry per query (%d)", s, kn[2]*kn[3])
	}
}
