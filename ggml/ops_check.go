//go:build cgo

package ggml

/*
#include "ggml.h"
*/
import "C"

// Shape checks mirror ggml's GGML_ASSERTs, so a mistake is an error here and not an
// abort inside C.

func ne4(t *Tensor) [4]int64 {
	p := t.ptr()
	return [4]int64{int64(p.ne[0]), int64(p.ne[1]), int64(p.ne[2]), int64(p.ne[3])}
}

func sameShape(a, b *Tensor) bool { return ne4(a) == ne4(b) }

// canRepeat reports whether b broadcasts onto a (every dim of a is a multiple of b's).
func canRepeat(b, a *Tensor) bool {
	x, y := ne4(a), ne4(b)
	for i := range x {
		if y[i] == 0 || x[i]%y[i] != 0 {
			return false
		}
	}
	return true
}

func isTransposed(t *Tensor) bool { p := t.ptr(); return p.nb[0] > p.nb[1] }

func sameCtx(op string, c *Context, ts ...*Tensor) {
	c.live()
	for _, t := range ts {
		if t != nil {
			t.ptr()
		}
	}
	_ = op
}

func needContiguous(op string, t *Tensor) {
	if !t.IsContiguous() {
		opErrorf(op, "%s must be contiguous (use Cont)", t)
	}
}
