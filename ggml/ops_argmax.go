//go:build cgo

package ggml

/*
#include "ggml.h"
#include "ggml-cpu.h"
*/
import "C"

// ArgmaxFirst is the index of the first of the largest values of each row of a (F32,
// rows contiguous), as I32 [rows]: llama.cpp's greedy pick (a NaN first value is the pick:
// every later value compares with it false; later NaNs never are). Each of up to slots
// threads scans its own slice of every row (ecotune's llama.cpp patch, the node
// llama_set_argmax_outputs adds after the logits); the CPU's op only.
func (c *Context) ArgmaxFirst(a *Tensor, slots int) *Tensor {
	sameCtx("argmax first", c, a)
	if a.Type() != TypeF32 || a.p.nb[0] != 4 || a.p.ne[2] != 1 || a.p.ne[3] != 1 {
		opErrorf("argmax first", "want F32 rows in a matrix, not %s", a)
	}
	if slots < 1 {
		opErrorf("argmax first", "slots %d must be at least 1", slots)
	}
	return c.wrap(C.ggml_cpu_argmax_first(c.reserve("argmax first", 2), a.p, C.int(slots))).SetName("argmax first")
}
