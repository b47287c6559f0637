//go:build cgo

package ggml

/*
#include "ggml.h"
*/
import "C"

// CrossEntropyLoss returns the mean over rows of -Σ labels·log softmax(logits), as a
// one-element tensor; logits and labels (probabilities) have the same shape.
func (c *Context) CrossEntropyLoss(logits, labels *Tensor) *Tensor {
	sameCtx("cross_entropy_loss", c, logits, labels)
	if !sameShape(logits, labels) {
		opErrorf("cross_entropy_loss", "logits %s and labels %s differ in shape", logits, labels)
	}
	return c.wrap(C.ggml_cross_entropy_loss(c.reserve("cross_entropy_loss", 1), logits.p, labels.p))
}

// AdamWStep updates param in place from grad with AdamW, keeping moments m and v;
// params is an F32 tensor of 7 values: lr, β1, β2, ε, weight decay, 1/(1-β1ᵗ), 1/(1-β2ᵗ).
func (c *Context) AdamWStep(param, grad, m, v, params *Tensor) *Tensor {
	sameCtx("opt_step_adamw", c, param, grad, m, v, params)
	if param.ptr().flags&C.GGML_TENSOR_FLAG_PARAM == 0 {
		opErrorf("opt_step_adamw", "%s is not marked as a parameter (SetParam)", param)
	}
	if !sameShape(param, grad) || !sameShape(param, m) || !sameShape(param, v) {
		opErrorf("opt_step_adamw", "param %s, grad %s, m %s, v %s differ in shape", param, grad, m, v)
	}
	if params.Type() != TypeF32 || params.Elements() != 7 {
		opErrorf("opt_step_adamw", "params %s must be 7 f32 values", params)
	}
	return c.wrap(C.ggml_opt_step_adamw(c.reserve("opt_step_adamw", 1), param.p, grad.p, m.p, v.p, params.p))
}
