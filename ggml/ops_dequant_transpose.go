//go:build cgo

package ggml

/*
#include "ggml.h"
#include "transpose.h"

static struct ggml_tensor * ecotune_dequant_transpose_op(struct ggml_context * ctx, struct ggml_tensor * a, enum ggml_type t) {
	struct ggml_tensor * args[1] = {a};
	return ggml_custom_4d(ctx, t, a->ne[1], a->ne[0], 1, 1, args, 1, ecotune_dequant_transpose, GGML_N_TASKS_MAX, NULL);
}

// A repacked weight is no source of the op: the scheduler would look for a backend whose
// repacking buffer supports a custom op, and none does (llama.cpp's takes products only).
// The weight is then handed over as the op's userdata; it is a weight, computed by
// nothing, so no ordering is lost.
static struct ggml_tensor * ecotune_dequant_transpose_repacked_op(struct ggml_context * ctx, struct ggml_tensor * a, enum ggml_type t) {
	return ggml_custom_4d(ctx, t, a->ne[1], a->ne[0], 1, 1, NULL, 0, ecotune_dequant_transpose, GGML_N_TASKS_MAX, a);
}
*/
import "C"

// DequantTranspose returns the transpose of the 2-D matrix a [in, out] (any type ggml
// can dequantize, rows contiguous), dequantized to t (F32, F16 or BF16): [out, in]. It is
// one fused op that the CPU backend runs (other backends hand it to the CPU), with the
// values and bits of Cast(Cont(Transpose(dequantized a)), t).
func (c *Context) DequantTranspose(a *Tensor, t Type) *Tensor {
	sameCtx("dequant transpose", c, a)
	if a.Ne(2) != 1 || a.Ne(3) != 1 || a.p.nb[0] != C.size_t(a.Type().TypeSize()) || !a.Type().valid() {
		opErrorf("dequant transpose", "%s must be a 2-D matrix with contiguous rows", a)
	}
	if C.ggml_get_type_traits(C.enum_ggml_type(a.Type())).to_float == nil {
		opErrorf("dequant transpose", "ggml cannot dequantize %s", a.Type())
	}
	if t != TypeF32 && t != TypeF16 && t != TypeBF16 {
		opErrorf("dequant transpose", "result type %s: want f32, f16 or bf16", t)
	}
	if a.Repacked() {
		return c.wrap(C.ecotune_dequant_transpose_repacked_op(c.reserve("dequant transpose", 1), a.p, C.enum_ggml_type(t))).SetName("dequant transpose")
	}
	return c.wrap(C.ecotune_dequant_transpose_op(c.reserve("dequant transpose", 1), a.p, C.enum_ggml_type(t))).SetName("dequant transpose")
}
