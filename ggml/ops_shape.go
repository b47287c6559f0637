//go:build cgo

package ggml

/*
#include "ggml.h"
*/
import "C"

// Reshape returns a view of a contiguous tensor with a new shape of the same size.
func (c *Context) Reshape(a *Tensor, ne ...int) *Tensor {
	sameCtx("reshape", c, a)
	needContiguous("reshape", a)
	if len(ne) < 1 || len(ne) > 4 {
		opErrorf("reshape", "need 1 to 4 dimensions, got %d", len(ne))
	}
	n := int64(1)
	var d [4]C.int64_t
	for i := range d {
		d[i] = 1
	}
	for i, x := range ne {
		if x < 1 {
			opErrorf("reshape", "dimension %d is %d", i, x)
		}
		n *= int64(x)
		d[i] = C.int64_t(x)
	}
	if n != int64(a.Elements()) {
		opErrorf("reshape", "%s has %d elements, shape %v has %d", a, a.Elements(), ne, n)
	}
	if int64(ne[0])%int64(a.Type().BlockSize()) != 0 {
		opErrorf("reshape", "row of %d does not fit %s blocks", ne[0], a.Type())
	}
	return c.wrap(C.ggml_reshape_4d(c.reserve("reshape", 1), a.p, d[0], d[1], d[2], d[3]))
}

// View returns a view of a with shape ne (up to 4 dims), byte strides nb for
// dimensions 1..len(ne)-1, starting offset bytes into a's data.
func (c *Context) View(a *Tensor, ne []int, nb []int, offset int) *Tensor {
	sameCtx("view", c, a)
	if len(ne) < 1 || len(ne) > 4 || len(nb) != len(ne)-1 {
		opErrorf("view", "need 1 to 4 dimensions and one stride fewer, got %d and %d", len(ne), len(nb))
	}
	var d [4]int64
	var s [4]int64
	for i := range d {
		d[i] = 1
	}
	for i, x := range ne {
		if x < 1 {
			opErrorf("view", "dimension %d is %d", i, x)
		}
		d[i] = int64(x)
	}
	s[0] = int64(a.Type().TypeSize())
	for i := 1; i < 4; i++ {
		if i-1 < len(nb) {
			s[i] = int64(nb[i-1])
		} else {
			s[i] = s[i-1] * d[i-1]
		}
	}
	// The last byte the view can touch must lie inside a.
	last := int64(offset) + int64(a.Type().RowSize(int(d[0])))
	for i := 1; i < 4; i++ {
		last += (d[i] - 1) * s[i]
	}
	if offset < 0 || last > int64(a.NBytes()) {
		opErrorf("view", "view %v (strides %v, offset %d) reaches past the %d bytes of %s", ne, nb, offset, a.NBytes(), a)
	}
	ctx := c.reserve("view", 1)
	return c.wrap(C.ggml_view_4d(ctx, a.p, C.int64_t(d[0]), C.int64_t(d[1]), C.int64_t(d[2]), C.int64_t(d[3]),
		C.size_t(s[1]), C.size_t(s[2]), C.size_t(s[3]), C.size_t(offset)))
}

// Permute returns a view whose dimension i is a's dimension axes[i]'s inverse: ggml's
// convention, where axes[k] says where a's dimension k goes.
func (c *Context) Permute(a *Tensor, axes ...int) *Tensor {
	sameCtx("permute", c, a)
	for len(axes) < 4 {
		axes = append(axes, len(axes))
	}
	if len(axes) != 4 {
		opErrorf("permute", "need at most 4 axes, got %d", len(axes))
	}
	var seen [4]bool
	for _, x := range axes {
		if x < 0 || x > 3 || seen[x] {
			opErrorf("permute", "axes %v are not a permutation of 0..3", axes)
		}
		seen[x] = true
	}
	return c.wrap(C.ggml_permute(c.reserve("permute", 1), a.p, C.int(axes[0]), C.int(axes[1]), C.int(axes[2]), C.int(axes[3])))
}

// Transpose swaps dimensions 0 and 1 (a view).
func (c *Context) Transpose(a *Tensor) *Tensor {
	sameCtx("transpose", c, a)
	return c.wrap(C.ggml_transpose(c.reserve("transpose", 1), a.p))
}

// Cont returns a contiguous copy of a (a no-op cost for tensors already contiguous).
func (c *Context) Cont(a *Tensor) *Tensor {
	sameCtx("cont", c, a)
	return c.wrap(C.ggml_cont(c.reserve("cont", 1), a.p))
}

// Cast returns a converted to type t.
func (c *Context) Cast(a *Tensor, t Type) *Tensor {
	sameCtx("cast", c, a)
	if !t.valid() {
		opErrorf("cast", "invalid type %d", int32(t))
	}
	if a.Ne(0)%t.BlockSize() != 0 {
		opErrorf("cast", "rows of %s do not fit %s blocks", a, t)
	}
	return c.wrap(C.ggml_cast(c.reserve("cast", 1), a.p, C.enum_ggml_type(t)))
}

// Cpy copies a into b (converting type) and returns the view of b holding the result;
// a and b must have the same number of elements.
func (c *Context) Cpy(a, b *Tensor) *Tensor {
	sameCtx("cpy", c, a, b)
	if a.Elements() != b.Elements() {
		opErrorf("cpy", "%s and %s differ in size", a, b)
	}
	return c.wrap(C.ggml_cpy(c.reserve("cpy", 1), a.p, b.p))
}

// Concat joins a and b along dimension dim; other dimensions and types must match.
func (c *Context) Concat(a, b *Tensor, dim int) *Tensor {
	sameCtx("concat", c, a, b)
	if dim < 0 || dim > 3 || a.Type() != b.Type() {
		opErrorf("concat", "cannot join %s and %s along %d", a, b, dim)
	}
	x, y := ne4(a), ne4(b)
	for i := range x {
		if i != dim && x[i] != y[i] {
			opErrorf("concat", "%s and %s differ in dimension %d", a, b, i)
		}
	}
	return c.wrap(C.ggml_concat(c.reserve("concat", 1), a.p, b.p, C.int(dim)))
}

// GetRows gathers rows of a (any type; F32 result) at the I32 indices in rows:
// a [n, r, k, …], rows [m, k, …] → [n, m, k, …]. It is the embedding lookup.
func (c *Context) GetRows(a, rows *Tensor) *Tensor {
	sameCtx("get_rows", c, a, rows)
	x, y := ne4(a), ne4(rows)
	if rows.Type() != TypeI32 || x[2] != y[1] || x[3] != y[2] || y[3] != 1 {
		opErrorf("get_rows", "cannot gather %s from %s", rows, a)
	}
	return c.wrap(C.ggml_get_rows(c.reserve("get_rows", 1), a.p, rows.p))
}

// Repeat tiles a to b's shape (b only gives the shape).
func (c *Context) Repeat(a, b *Tensor) *Tensor {
	sameCtx("repeat", c, a, b)
	if !canRepeat(a, b) {
		opErrorf("repeat", "%s does not tile %s", a, b)
	}
	return c.wrap(C.ggml_repeat(c.reserve("repeat", 1), a.p, b.p))
}
