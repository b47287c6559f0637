//go:build cgo

package ggml

/*
#include <string.h>
#include "ggml.h"
#include "loss.h"

static struct ggml_tensor * ecotune_ce_op(struct ggml_context * ctx, int back,
		struct ggml_tensor ** args, int n_args, int64_t ne0, int64_t ne1) {
	return ggml_custom_4d(ctx, GGML_TYPE_F32, ne0, ne1, 1, 1, args, n_args,
		back ? ecotune_ce_back : ecotune_ce_fwd, GGML_N_TASKS_MAX, NULL);
}

static int ecotune_ce_is_fwd(const struct ggml_tensor * t) {
	if (t == NULL || t->op != GGML_OP_CUSTOM) return 0;
	ggml_custom_op_t f;
	memcpy(&f, t->op_params, sizeof f);
	return f == ecotune_ce_fwd;
}
*/
import "C"

// CrossEntropyTargets returns the mean over rows of -log softmax(row)[target], as a
// one-element tensor, for logits [V, K] and targets I32 [K] (class indices, where
// CrossEntropyLoss takes one-hot rows as large as the logits). The rows' losses come
// from a fused op that the CPU backend runs (other backends hand it to the CPU), which
// also keeps each row's log-sum-exp for CrossEntropyTargetsBack. Targets must lie in
// [0, V): the op does not check them.
func (c *Context) CrossEntropyTargets(logits, targets *Tensor) *Tensor {
	sameCtx("cross entropy", c, logits, targets)
	checkCrossEntropy(logits, targets)
	K := logits.Ne(1)
	args := [2]*C.struct_ggml_tensor{logits.p, targets.p}
	ctx := c.reserve("cross entropy", 2)
	fwd := C.ecotune_ce_op(ctx, 0, &args[0], 2, C.int64_t(K), 2)
	c.wrap(fwd).SetName("cross entropy")
	rows := c.wrap(C.ggml_view_1d(ctx, fwd, C.int64_t(K), 0))
	return c.Scale(c.Sum(rows), 1/float32(K))
}

// CrossEntropyTargetsBack returns the gradient of CrossEntropyTargets' logits given
// grad, the gradient of its result loss.
func (c *Context) CrossEntropyTargetsBack(logits, targets, loss, grad *Tensor) *Tensor {
	sameCtx("cross entropy back", c, logits, targets, loss, grad)
	checkCrossEntropy(logits, targets)
	var fwd *C.struct_ggml_tensor
	if p := loss.ptr(); p.op == C.GGML_OP_SCALE && p.src[0] != nil && p.src[0].src[0] != nil {
		fwd = p.src[0].src[0].view_src
	}
	if C.ecotune_ce_is_fwd(fwd) == 0 || fwd.src[0] != logits.p || fwd.src[1] != targets.p {
		opErrorf("cross entropy back", "%s is not CrossEntropyTargets' result for these logits and targets", loss)
	}
	if grad.Type() != TypeF32 || grad.Elements() != 1 {
		opErrorf("cross entropy back", "gradient %s must be one F32 value", grad)
	}
	args := [4]*C.struct_ggml_tensor{logits.p, targets.p, fwd, grad.p}
	return c.wrap(C.ecotune_ce_op(c.reserve("cross entropy back", 1), 1, &args[0], 4, C.int64_t(logits.Ne(0)), C.int64_t(logits.Ne(1)))).SetName("cross entropy back")
}

func checkCrossEntropy(logits, targets *Tensor) {
	if logits.Type() != TypeF32 || logits.p.nb[0] != 4 || logits.Ne(2) != 1 || logits.Ne(3) != 1 {
		opErrorf("cross entropy", "logits %s must be a 2-D F32 matrix with contiguous rows", logits)
	}
	if targets.Type() != TypeI32 || !targets.IsContiguous() || targets.Elements() != logits.Ne(1) {
		opErrorf("cross entropy", "targets %s must be %d contiguous I32 values", targets, logits.Ne(1))
	}
}
