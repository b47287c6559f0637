//go:build cgo

package ggml

/*
#include "ggml.h"
#include "half.h"

static struct ggml_tensor * ecotune_half_scaled_op(struct ggml_context * ctx, struct ggml_tensor * x) {
	struct ggml_tensor * args[1] = {x};
	return ggml_custom_4d(ctx, GGML_TYPE_F16, x->ne[0], x->ne[1], x->ne[2], x->ne[3], args, 1, ecotune_half_scaled, GGML_N_TASKS_MAX, NULL);
}

static struct ggml_tensor * ecotune_half_unscale_op(struct ggml_context * ctx, struct ggml_tensor * p, struct ggml_tensor * x) {
	struct ggml_tensor * args[2] = {p, x};
	return ggml_custom_4d(ctx, GGML_TYPE_F32, p->ne[0], p->ne[1], p->ne[2], p->ne[3], args, 2, ecotune_half_unscale, GGML_N_TASKS_MAX, NULL);
}
*/
import "C"

// halfProduct returns MulMat(at, x) for an F16 matrix at and an F32 x, with each row of
// x scaled by a power of two before ggml rounds it to F16 and the product's row scaled
// back (see half.c): the plain product would lose small gradients to F16's range. Both
// ops are the CPU's (fused ops only).
func (c *Context) halfProduct(at, x *Tensor) *Tensor {
	sameCtx("half product", c, at, x)
	if at.Type() != TypeF16 || x.Type() != TypeF32 || x.p.nb[0] != 4 {
		opErrorf("half product", "want an F16 matrix and F32 rows, not %s and %s", at, x)
	}
	xs := c.wrap(C.ecotune_half_scaled_op(c.reserve("half product", 1), x.p)).SetName("f16 scaled")
	p := c.MulMat(at, xs)
	return c.wrap(C.ecotune_half_unscale_op(c.reserve("half product", 1), p.p, x.p)).SetName("f16 unscaled")
}
