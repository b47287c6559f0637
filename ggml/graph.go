//go:build cgo

package ggml

/*
#include "ggml.h"
*/
import "C"

import "unsafe"

// Graph is a computation graph built in a Context and freed with it.
type Graph struct {
	g            *C.struct_ggml_cgraph
	c            *Context
	size         int
	seen         map[*C.struct_ggml_tensor]bool // tensors already in the graph, to bound growth
	nodes, leafs int
	forward      int     // nodes before BuildBackward appended the backward pass; 0 without one
	added        []added // tensors FuseAttention made outside the node list, for Checkpoint
}

// NewGraph makes a graph of up to size nodes (and size leaves) in c; grads reserves
// room for a backward pass.
func (c *Context) NewGraph(size int, grads bool) *Graph {
	ctx := c.live()
	if size < 1 {
		opErrorf("new graph", "size %d", size)
	}
	need := C.ggml_graph_overhead_custom(C.size_t(size), C.bool(grads))
	if C.ggml_used_mem(ctx)+need > C.ggml_get_mem_size(ctx) {
		opErrorf("new graph", "context has no room for a graph of %d nodes: create it with graphNodes ≥ %d", size, size)
	}
	g := C.ggml_new_graph_custom(ctx, C.size_t(size), C.bool(grads))
	return &Graph{g: g, c: c, size: size, seen: map[*C.struct_ggml_tensor]bool{}}
}

func (g *Graph) live() *C.struct_ggml_cgraph {
	if g == nil || g.g == nil || g.c == nil || g.c.ctx == nil {
		panic(ErrClosed)
	}
	return g.g
}

// Expand adds t and every tensor it depends on to the graph. It panics with an
// *OpError if the graph would overflow, which ggml would turn into an abort.
func (g *Graph) Expand(t *Tensor) {
	cg := g.live()
	var stack []*C.struct_ggml_tensor
	newNodes, newLeafs := 0, 0
	visit := map[*C.struct_ggml_tensor]bool{}
	stack = append(stack, t.ptr())
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if p == nil || visit[p] || g.seen[p] {
			continue
		}
		visit[p] = true
		if p.op == C.GGML_OP_NONE && p.flags&C.GGML_TENSOR_FLAG_PARAM == 0 {
			newLeafs++
		} else {
			newNodes++
		}
		for i := 0; i < C.GGML_MAX_SRC; i++ {
			stack = append(stack, p.src[i])
		}
		if p.view_src != nil {
			stack = append(stack, p.view_src)
		}
	}
	if g.nodes+newNodes > g.size || g.leafs+newLeafs > g.size {
		opErrorf("graph expand", "graph of size %d is too small for %d nodes and %d leaves", g.size, g.nodes+newNodes, g.leafs+newLeafs)
	}
	C.ggml_build_forward_expand(cg, t.p)
	for p := range visit {
		g.seen[p] = true
	}
	g.nodes = int(C.ggml_graph_n_nodes(cg))
	g.leafs += newLeafs
}

// ExpandFrom adds the nodes of h that outputs depend on to g, in h's order, each
// preceded by the tensors it depends on that g lacks. After a rewrite (OutProdsAsMatMul,
// Checkpoint) this puts each new tensor right before its first use, where expanding from
// the outputs alone could compute it long before and keep it alive in between; and it
// drops the nodes a rewrite left unused, which matters beyond their cost: the graph
// allocator frees a tensor only once every view of it has been used, so one dead view
// keeps its tensor alive to the end.
//
// after, if not nil, gives tensors to add right after a node of h (a gradient's
// consumers, so that it need not stay alive to the end of the graph); they count as
// outputs.
func (g *Graph) ExpandFrom(h *Graph, outputs []*Tensor, after map[*Tensor][]*Tensor) {
	ch := h.live()
	then := make(map[*C.struct_ggml_tensor][]*Tensor, len(after))
	needed := map[*C.struct_ggml_tensor]bool{}
	var stack []*C.struct_ggml_tensor
	for _, t := range outputs {
		stack = append(stack, t.ptr())
	}
	for t, ts := range after {
		then[t.ptr()] = append(then[t.ptr()], ts...)
		for _, x := range ts {
			stack = append(stack, x.ptr())
		}
	}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if p == nil || needed[p] {
			continue
		}
		needed[p] = true
		for _, s := range p.src {
			stack = append(stack, s)
		}
		stack = append(stack, p.view_src)
	}
	for i := 0; i < int(C.ggml_graph_n_nodes(ch)); i++ {
		p := C.ggml_graph_node(ch, C.int(i))
		if !needed[p] {
			continue
		}
		g.Expand(&Tensor{p: p, c: h.c})
		for _, t := range then[p] {
			g.Expand(t)
		}
	}
	for _, t := range outputs {
		g.Expand(t)
	}
}

// BuildBackward appends the backward pass for the graph's loss (a tensor marked with
// SetLoss) to the graph; gradient tensors are made in gradCtx.
func (g *Graph) BuildBackward(gradCtx *Context) {
	cg := g.live()
	ctx := gradCtx.live()
	// Each forward node gets at most a gradient and a few helper tensors.
	if C.ggml_graph_size(cg) < 3*C.ggml_graph_n_nodes(cg) {
		opErrorf("build backward", "graph of size %d is too small for the backward pass of %d nodes (need ~3×)", g.size, g.nodes)
	}
	free := (C.ggml_get_mem_size(ctx) - C.ggml_used_mem(ctx)) / C.ggml_tensor_overhead()
	if free < 3*C.size_t(C.ggml_graph_n_nodes(cg)) {
		opErrorf("build backward", "gradient context has room for %d tensors, need ~%d", free, 3*C.ggml_graph_n_nodes(cg))
	}
	g.forward = int(C.ggml_graph_n_nodes(cg))
	C.ggml_build_backward_expand(ctx, cg, nil)
	g.nodes = int(C.ggml_graph_n_nodes(cg))
	gradCtx.nTensors = int(C.ggml_used_mem(ctx) / C.ggml_tensor_overhead())
}

// Grad returns the gradient of t in a graph with a backward pass, or nil.
func (g *Graph) Grad(t *Tensor) *Tensor {
	cg := g.live()
	p := C.ggml_graph_get_grad(cg, t.ptr())
	if p == nil {
		return nil
	}
	return &Tensor{p: p, c: g.c}
}

// Len is the number of nodes (computed tensors) in the graph.
func (g *Graph) Len() int { return int(C.ggml_graph_n_nodes(g.live())) }

// Node returns node i (negative i counts from the end).
func (g *Graph) Node(i int) *Tensor {
	return &Tensor{p: C.ggml_graph_node(g.live(), C.int(i)), c: g.c}
}

// Lookup returns the graph's tensor named name, or nil.
func (g *Graph) Lookup(name string) *Tensor {
	cg := g.live()
	b := append([]byte(name), 0)
	p := C.ggml_graph_get_tensor(cg, (*C.char)(unsafe.Pointer(&b[0])))
	if p == nil {
		return nil
	}
	return &Tensor{p: p, c: g.c}
}

// Reset zeroes the gradients of a graph with a backward pass and sets the loss's to 1.
func (g *Graph) Reset() { C.ggml_graph_reset(g.live()) }
