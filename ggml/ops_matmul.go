//go:build cgo

package ggml

/*
#include "ggml.h"
*/
import "C"

// MulMat returns a·b in ggml's convention: a is [k, m, …] (m rows of length k, any
// type), b is [k, n, …] (F32), the result is [m, n, …] F32 (row j of b times each row
// of a). b's dims 2 and 3 must be multiples of a's (broadcast).
func (c *Context) MulMat(a, b *Tensor) *Tensor {
	sameCtx("mul_mat", c, a, b)
	x, y := ne4(a), ne4(b)
	if x[0] != y[0] || y[2]%x[2] != 0 || y[3]%x[3] != 0 {
		opErrorf("mul_mat", "cannot multiply %s by %s", a, b)
	}
	if isTransposed(a) {
		opErrorf("mul_mat", "%s must not be a transposed view (use Cont)", a)
	}
	return c.wrap(C.ggml_mul_mat(c.reserve("mul_mat", 1), a.p, b.p))
}

// OutProd returns the outer-product sum a·bᵀ over the shared dimension 1:
// a [m, k, …], b [n, k, …] → [m, n, …] F32. It is how ggml's autograd forms gradients.
func (c *Context) OutProd(a, b *Tensor) *Tensor {
	sameCtx("out_prod", c, a, b)
	x, y := ne4(a), ne4(b)
	if x[1] != y[1] || y[2]%x[2] != 0 || y[3]%x[3] != 0 {
		opErrorf("out_prod", "cannot form the outer product of %s and %s", a, b)
	}
	if isTransposed(a) {
		opErrorf("out_prod", "%s must not be a transposed view", a)
	}
	return c.wrap(C.ggml_out_prod(c.reserve("out_prod", 1), a.p, b.p))
}
