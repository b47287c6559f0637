//go:build cgo

package ggml

/*
#include <string.h>
#include "ggml.h"
#include "lora.h"

// ecotune_lora_op makes one of lora.c's ops: 0 down, 1 up, 2 back_x, 3 back_w.
static struct ggml_tensor * ecotune_lora_op(struct ggml_context * ctx, int which,
		struct ggml_tensor ** args, int n_args, int64_t ne0, int64_t ne1, float s) {
	ggml_custom_op_t f = which == 0 ? ecotune_lora_down : which == 1 ? ecotune_lora_up :
		which == 2 ? ecotune_lora_back_x : ecotune_lora_back_w;
	struct ggml_tensor * t = ggml_custom_4d(ctx, GGML_TYPE_F32, ne0, ne1, 1, 1, args, n_args, f, GGML_N_TASKS_MAX, NULL);
	ecotune_lora_set_scale(t, s);
	return t;
}

static int ecotune_lora_is_up(const struct ggml_tensor * t) {
	if (t == NULL || t->op != GGML_OP_CUSTOM) return 0;
	ggml_custom_op_t f;
	memcpy(&f, t->op_params, sizeof f);
	return f == ecotune_lora_up;
}
*/
import "C"

// LoRA returns s·B(A·x) [out, N] for x [in, N], A [in, r] and B [r, out] (ggml's order:
// A·x is mul_mat(A, x)) in two fused ops that the CPU backend runs (other backends hand
// them to the CPU): A·x, which LoRABack reads, then s·B times it. Rows of x must be
// contiguous; A and B must be contiguous F32.
func (c *Context) LoRA(x, A, B *Tensor, s float32) *Tensor {
	sameCtx("lora", c, x, A, B)
	checkLoRA(x, A, B)
	N, r, out := x.Ne(1), A.Ne(1), B.Ne(1)
	ctx := c.reserve("lora", 2)
	dargs := [2]*C.struct_ggml_tensor{x.p, A.p}
	u := C.ecotune_lora_op(ctx, 0, &dargs[0], 2, C.int64_t(r), C.int64_t(N), 1)
	c.wrap(u).SetName("lora down")
	uargs := [2]*C.struct_ggml_tensor{u, B.p}
	return c.wrap(C.ecotune_lora_op(ctx, 1, &uargs[0], 2, C.int64_t(out), C.int64_t(N), C.float(s))).SetName("lora up")
}

// LoRABack returns the gradients of LoRA's x, A and B (shaped as they are) given grad,
// the gradient of its result y, in two fused CPU ops: one pass over grad for A·x's
// gradient and x's, one over x and grad for A's and B's.
func (c *Context) LoRABack(x, A, B, y, grad *Tensor, s float32) (dx, dA, dB *Tensor) {
	sameCtx("lora back", c, x, A, B, y, grad)
	checkLoRA(x, A, B)
	in, N, r, out := x.Ne(0), x.Ne(1), A.Ne(1), B.Ne(1)
	up := y.ptr()
	if up.view_src != nil {
		up = up.view_src
	}
	if C.ecotune_lora_is_up(up) == 0 || up.src[1] != B.p || up.src[0].src[0] != x.p || up.src[0].src[1] != A.p {
		opErrorf("lora back", "%s is not LoRA's result for these x, A, B", y)
	}
	if grad.Type() != TypeF32 || ne4(grad) != [4]int64{int64(out), int64(N), 1, 1} {
		opErrorf("lora back", "gradient %s does not fit the output [%d, %d]", grad, out, N)
	}
	if grad.p.nb[0] != 4 {
		grad = c.Cont(grad)
	}
	ctx := c.reserve("lora back", 6)
	xargs := [3]*C.struct_ggml_tensor{A.p, B.p, grad.p}
	bx := C.ecotune_lora_op(ctx, 2, &xargs[0], 3, C.int64_t(r*N+in*N), 1, C.float(s))
	wargs := [5]*C.struct_ggml_tensor{x.p, up.src[0], bx, grad.p, A.p}
	bw := C.ecotune_lora_op(ctx, 3, &wargs[0], 5, C.int64_t(in*r+r*out), 1, C.float(s))
	c.wrap(bx).SetName("lora back x")
	c.wrap(bw).SetName("lora back w")
	dx = c.wrap(C.ggml_view_2d(ctx, bx, C.int64_t(in), C.int64_t(N), C.size_t(4*in), C.size_t(4*r*N)))
	dA = c.wrap(C.ggml_view_2d(ctx, bw, C.int64_t(in), C.int64_t(r), C.size_t(4*in), 0))
	dB = c.wrap(C.ggml_view_2d(ctx, bw, C.int64_t(r), C.int64_t(out), C.size_t(4*r), C.size_t(4*in*r)))
	return dx, dA, dB
}

func checkLoRA(x, A, B *Tensor) {
	if x.Type() != TypeF32 || x.p.nb[0] != 4 || x.Ne(2) != 1 || x.Ne(3) != 1 {
		opErrorf("lora", "x %s must be a 2-D F32 matrix with contiguous rows", x)
	}
	for _, t := range []*Tensor{A, B} {
		if t.Type() != TypeF32 || !t.IsContiguous() || t.Ne(2) != 1 || t.Ne(3) != 1 {
			opErrorf("lora", "%s must be a contiguous 2-D F32 matrix", t)
		}
	}
	if A.Ne(0) != x.Ne(0) || B.Ne(0) != A.Ne(1) {
		opErrorf("lora", "x %s, A %s, B %s do not fit [in, N], [in, r], [r, out]", x, A, B)
	}
}
