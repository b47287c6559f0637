//go:build cgo

package ggml

/*
#include "ggml.h"
*/
import "C"

import (
	"sort"
)

// Checkpoint rewrites the backward pass BuildBackward made so that it recomputes the
// forward activations between consecutive checkpoints instead of reading the stored
// ones: gradient checkpointing. checkpoints are forward tensors in graph order (a
// transformer's layer inputs, then the last layer's output); the activations of each
// span between two of them are recomputed from the first, in a copy of that span made
// in c, just before the span's backward pass. The stored activations are then last used
// by the forward pass, so the graph allocator reuses their memory: peak memory holds
// the checkpoints and one span's activations instead of every span's, for about one
// more forward pass of compute. Nodes before the first checkpoint and after the last
// are kept as they are.
//
// keep lists forward tensors inside the spans that are stored rather than recomputed
// (selective checkpointing): the recomputation reads them as it reads the checkpoints.
// Keeping the outputs of a span's large products leaves only its cheap operations to be
// run again, for the memory of those outputs. A Kept with a Stored copy keeps that
// instead, and the backward pass reads it cast back to the tensor's type.
//
// As with OutProdsAsMatMul, the rewritten graph must run through a new graph filled by
// ExpandFrom. It returns the number of tensors copied.
func (g *Graph) Checkpoint(c *Context, checkpoints []*Tensor, keep []Kept) int {
	cg := g.live()
	if g.forward == 0 {
		opErrorf("checkpoint", "the graph has no backward pass")
	}
	index := make(map[*C.struct_ggml_tensor]int, g.forward)
	for i := 0; i < g.forward; i++ {
		index[C.ggml_graph_node(cg, C.int(i))] = i
	}
	// A fused op stands where the forward node it computes stands, and is recomputed
	// with its span; the fused backward ops are rewritten like listed backward nodes.
	backward := []*C.struct_ggml_tensor{}
	for i := g.forward; i < int(C.ggml_graph_n_nodes(cg)); i++ {
		backward = append(backward, C.ggml_graph_node(cg, C.int(i)))
	}
	for _, a := range g.added {
		if a.anchor >= 0 {
			index[a.p] = a.anchor
		} else {
			backward = append(backward, a.p)
		}
	}
	bounds := make([]int, 0, len(checkpoints))
	for _, t := range checkpoints {
		i, ok := index[t.ptr()]
		if !ok {
			opErrorf("checkpoint", "%s is not a node of the forward pass", t)
		}
		bounds = append(bounds, i)
	}
	sort.Ints(bounds)
	// kept maps each kept tensor to its stored copy, or to nil when it is stored itself.
	kept := make(map[*C.struct_ggml_tensor]*C.struct_ggml_tensor, len(keep))
	for _, k := range keep {
		for _, t := range []*Tensor{k.Tensor, k.Stored} {
			if t == nil {
				continue
			}
			if _, ok := index[t.ptr()]; !ok {
				opErrorf("checkpoint", "%s (kept) is not a node of the forward pass", t)
			}
		}
		var stored *C.struct_ggml_tensor
		if k.Stored != nil {
			stored = k.Stored.ptr()
			if k.Stored.Elements() != k.Tensor.Elements() || !k.Tensor.IsContiguous() {
				opErrorf("checkpoint", "%s cannot be stored as %s", k.Tensor, k.Stored)
			}
		}
		kept[k.Tensor.ptr()] = stored
	}
	// back returns what the backward pass reads for a tensor: a kept tensor's stored copy
	// cast back, made once.
	backs := map[*C.struct_ggml_tensor]*C.struct_ggml_tensor{}
	back := func(p *C.struct_ggml_tensor) *C.struct_ggml_tensor {
		stored, ok := kept[p]
		if !ok || stored == nil {
			return p
		}
		if b, ok := backs[p]; ok {
			return b
		}
		b := C.ggml_cast(c.reserve("checkpoint", 1), stored, p._type)
		(&Tensor{p: b, c: c}).SetName(C.GoString(&p.name[0]) + " (back)")
		backs[p] = b
		return b
	}
	// span is the index of the span holding p: -1 for tensors outside every span, the
	// checkpoints themselves and the kept tensors included, and for parameters, which
	// the graph lists among its nodes but nothing computes.
	span := func(p *C.struct_ggml_tensor) int {
		i, ok := index[p]
		if _, isKept := kept[p]; !ok || p.op == C.GGML_OP_NONE || isKept {
			return -1
		}
		s := sort.SearchInts(bounds, i+1) - 1
		if s < 0 || s >= len(bounds)-1 || bounds[s] == i {
			return -1
		}
		return s
	}
	copies := map[*C.struct_ggml_tensor]*C.struct_ggml_tensor{}
	var recompute func(p *C.struct_ggml_tensor) *C.struct_ggml_tensor
	recompute = func(p *C.struct_ggml_tensor) *C.struct_ggml_tensor {
		if q, ok := copies[p]; ok {
			return q
		}
		s := span(p)
		inSpan := func(x *C.struct_ggml_tensor) *C.struct_ggml_tensor {
			if x != nil && span(x) == s {
				return recompute(x)
			}
			return back(x)
		}
		q := C.ggml_new_tensor(c.reserve("checkpoint", 1), p._type, 4, &p.ne[0])
		q.op, q.op_params, q.nb = p.op, p.op_params, p.nb
		for j := range q.src {
			q.src[j] = inSpan(p.src[j])
		}
		if p.view_src != nil {
			q.view_src, q.view_offs = inSpan(p.view_src), p.view_offs
		}
		(&Tensor{p: q, c: c}).SetName(C.GoString(&p.name[0]) + " (re)")
		copies[p] = q
		return q
	}
	for _, node := range backward {
		for j := range node.src {
			if x := node.src[j]; x != nil && span(x) >= 0 {
				node.src[j] = recompute(x)
			} else if x != nil {
				node.src[j] = back(x)
			}
		}
		if x := node.view_src; x != nil && span(x) >= 0 {
			node.view_src = recompute(x)
		} else if x != nil {
			node.view_src = back(x)
		}
	}
	return len(copies)
}

// Kept is a forward tensor that gradient checkpointing stores rather than recomputes
// (Graph.Checkpoint). With Stored set, that tensor is kept instead: a copy of Tensor in a
// narrower type (Context.Cast), which the caller makes a node of the forward pass before
// the backward pass is built, so that Tensor itself is freed after its forward uses.
type Kept struct {
	Tensor, Stored *Tensor
}
