//go:build cgo

package ggml

/*
#include "ggml.h"
*/
import "C"

func (c *Context) binary(op string, a, b *Tensor) *C.struct_ggml_context {
	sameCtx(op, c, a, b)
	if !canRepeat(b, a) {
		opErrorf(op, "%s does not broadcast onto %s", b, a)
	}
	return c.reserve(op, 1)
}

// Add returns a+b with b broadcast onto a's shape.
func (c *Context) Add(a, b *Tensor) *Tensor {
	return c.wrap(C.ggml_add(c.binary("add", a, b), a.p, b.p))
}

// Sub returns a-b with b broadcast onto a's shape.
func (c *Context) Sub(a, b *Tensor) *Tensor {
	return c.wrap(C.ggml_sub(c.binary("sub", a, b), a.p, b.p))
}

// Mul returns the element-wise a·b with b broadcast onto a's shape.
func (c *Context) Mul(a, b *Tensor) *Tensor {
	return c.wrap(C.ggml_mul(c.binary("mul", a, b), a.p, b.p))
}

// Scale returns s·a.
func (c *Context) Scale(a *Tensor, s float32) *Tensor {
	sameCtx("scale", c, a)
	return c.wrap(C.ggml_scale(c.reserve("scale", 1), a.p, C.float(s)))
}

// SiLU returns x·sigmoid(x) element-wise.
func (c *Context) SiLU(a *Tensor) *Tensor {
	sameCtx("silu", c, a)
	return c.wrap(C.ggml_silu(c.reserve("silu", 1), a.p))
}

// Exp returns e^a element-wise (differentiable).
func (c *Context) Exp(a *Tensor) *Tensor {
	sameCtx("exp", c, a)
	return c.wrap(C.ggml_exp(c.reserve("exp", 1), a.p))
}

// Softplus returns log(1 + e^a) element-wise (differentiable).
func (c *Context) Softplus(a *Tensor) *Tensor {
	sameCtx("softplus", c, a)
	return c.wrap(C.ggml_softplus(c.reserve("softplus", 1), a.p))
}

// GELU returns ggml's GELU (tanh approximation, as GPT-2 and Phi use).
func (c *Context) GELU(a *Tensor) *Tensor {
	sameCtx("gelu", c, a)
	return c.wrap(C.ggml_gelu(c.reserve("gelu", 1), a.p))
}

// GELUErf returns the exact GELU, x·Φ(x).
func (c *Context) GELUErf(a *Tensor) *Tensor {
	sameCtx("gelu_erf", c, a)
	return c.wrap(C.ggml_gelu_erf(c.reserve("gelu_erf", 1), a.p))
}

// SwiGLU returns silu(a)·b, the gated feed-forward of Llama-style models.
func (c *Context) SwiGLU(a, b *Tensor) *Tensor {
	sameCtx("swiglu", c, a, b)
	if !sameShape(a, b) || a.Type() != b.Type() {
		opErrorf("swiglu", "%s and %s must have the same shape and type", a, b)
	}
	return c.wrap(C.ggml_swiglu_split(c.reserve("swiglu", 1), a.p, b.p))
}

// Sqr returns a² element-wise.
func (c *Context) Sqr(a *Tensor) *Tensor {
	sameCtx("sqr", c, a)
	return c.wrap(C.ggml_sqr(c.reserve("sqr", 1), a.p))
}

// Sum returns the sum of all elements as a one-element tensor.
func (c *Context) Sum(a *Tensor) *Tensor {
	sameCtx("sum", c, a)
	return c.wrap(C.ggml_sum(c.reserve("sum", 1), a.p))
}

// SumRows returns the sum of each row: [n, …] → [1, …].
func (c *Context) SumRows(a *Tensor) *Tensor {
	sameCtx("sum_rows", c, a)
	return c.wrap(C.ggml_sum_rows(c.reserve("sum_rows", 1), a.p))
}

// Mean returns the mean of each row: [n, …] → [1, …].
func (c *Context) Mean(a *Tensor) *Tensor {
	sameCtx("mean", c, a)
	return c.wrap(C.ggml_mean(c.reserve("mean", 1), a.p))
}
