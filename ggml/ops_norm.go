//go:build cgo

package ggml

/*
#include "ggml.h"
*/
import "C"

// RMSNorm divides each row by its root mean square (plus eps), as Llama does.
func (c *Context) RMSNorm(a *Tensor, eps float32) *Tensor {
	sameCtx("rms_norm", c, a)
	return c.wrap(C.ggml_rms_norm(c.reserve("rms_norm", 1), a.p, C.float(eps)))
}

// Norm normalises each row to zero mean and unit variance (plus eps): LayerNorm
// without its scale and bias.
func (c *Context) Norm(a *Tensor, eps float32) *Tensor {
	sameCtx("norm", c, a)
	return c.wrap(C.ggml_norm(c.reserve("norm", 1), a.p, C.float(eps)))
}
