//go:build cgo

package ggml

/*
#include "ggml.h"
*/
import "C"

// AttentionSite is one attention block of a graph built from ggml's generic ops, for
// FuseAttention: Q, K and V as CausalAttention takes them, Out the tensor holding
// their attention [hd·H, T·B] (whatever ops computed it), and Opts its scores.
type AttentionSite struct {
	Q, K, V, Out *Tensor
	Opts         AttentionOptions
}

// added is a tensor a rewrite made outside the graph's node list: anchor is the index
// of the forward node it computes a part of (-1: part of the backward pass).
type added struct {
	p      *C.struct_ggml_tensor
	anchor int
}

// FuseAttention computes each site's attention with CausalAttention and, in a graph
// with a backward pass, the gradients of its Q, K and V with CausalAttentionBack.
//
// Why after autograd rather than in the model's builder: ggml's backward pass has no
// rule for a custom op, so the forward graph is built from generic ops, autograd
// differentiates those, and this rewrite then turns Out and the gradients of Q, K and
// V into views of the fused ops' results. Every consumer reads them as before, and the
// generic ops are left with no consumer: ExpandFrom drops them, and with them the T×T
// probabilities each head stored and the masked half of each head's products.
//
// Q, K and V must have no consumer but the site's attention (their gradients are
// replaced, not added to). Call it before Checkpoint, which recomputes the fused
// forward op like any other, and run the result through a new graph filled by
// ExpandFrom. It returns the number of sites fused.
func (g *Graph) FuseAttention(c *Context, sites []AttentionSite) int {
	index := g.nodeIndex()
	// moved: nodes turned into other tensors, whose views must follow them.
	moved := map[*C.struct_ggml_tensor]bool{}
	for _, s := range sites {
		hd, H, T, B := s.Q.Ne(0), s.Q.Ne(1), s.Q.Ne(2), s.Q.Ne(3)
		if s.Out.Type() != TypeF32 || ne4(s.Out) != [4]int64{int64(hd * H), int64(T * B), 1, 1} {
			opErrorf("fuse attention", "%s is not the attention [%d, %d] of %s", s.Out, hd*H, T*B, s.Q)
		}
		at, ok := index[s.Out.ptr()]
		if !ok || at >= g.forwardNodes() {
			opErrorf("fuse attention", "%s is not a node of the forward pass", s.Out)
		}
		var gradOut, gq, gk, gv *Tensor
		if g.forward > 0 {
			gradOut, gq, gk, gv = g.Grad(s.Out), g.Grad(s.Q), g.Grad(s.K), g.Grad(s.V)
		}
		out := c.CausalAttention(s.Q, s.K, s.V, s.Opts)
		become(s.Out, out, moved)
		g.added = append(g.added, added{p: out.p.view_src, anchor: at})
		if gradOut == nil || (gq == nil && gk == nil && gv == nil) {
			continue
		}
		dq, dk, dv := c.CausalAttentionBack(s.Q, s.K, s.V, s.Out, gradOut, s.Opts)
		kv := dk.p.view_src
		g.added = append(g.added, added{p: dq.p, anchor: -1}, added{p: kv, anchor: -1})
		if dq.p.src[1] != kv && dq.p.src[4] != kv.src[4] {
			opErrorf("fuse attention", "unexpected backward ops")
		}
		if grad := kv.src[4]; grad != gradOut.p {
			g.added = append(g.added, added{p: grad, anchor: -1}) // a contiguous copy
		}
		for _, p := range [][2]*Tensor{{gq, viewAll(c, dq)}, {gk, dk}, {gv, dv}} {
			if p[0] != nil {
				become(p[0], p[1], moved)
			}
		}
	}
	g.followMoved(moved)
	return len(sites)
}

// followMoved points the views of nodes that become turned into views at what those
// now view: ggml's allocator expects a view's source to be no view itself.
func (g *Graph) followMoved(moved map[*C.struct_ggml_tensor]bool) {
	cg := g.live()
	for i := 0; i < int(C.ggml_graph_n_nodes(cg)); i++ {
		node := C.ggml_graph_node(cg, C.int(i))
		if v := node.view_src; v != nil && moved[v] && v.view_src != nil {
			node.view_offs += v.view_offs
			node.view_src = v.view_src
		}
	}
}

// nodeIndex maps each node of g to its index.
func (g *Graph) nodeIndex() map[*C.struct_ggml_tensor]int {
	cg := g.live()
	index := map[*C.struct_ggml_tensor]int{}
	for i := 0; i < int(C.ggml_graph_n_nodes(cg)); i++ {
		index[C.ggml_graph_node(cg, C.int(i))] = i
	}
	return index
}

// forwardNodes is the number of forward nodes: all of them without a backward pass.
func (g *Graph) forwardNodes() int {
	if g.forward > 0 {
		return g.forward
	}
	return int(C.ggml_graph_n_nodes(g.live()))
}

// viewAll returns a view of the whole of t with t's own shape.
func viewAll(c *Context, t *Tensor) *Tensor {
	p := t.ptr()
	return c.wrap(C.ggml_view_4d(c.reserve("fuse attention", 1), p, p.ne[0], p.ne[1], p.ne[2], p.ne[3], p.nb[1], p.nb[2], p.nb[3], 0))
}

// become turns node into t (a tensor of the same type and shape: a view, or an op) in
// place, so that its consumers read t's value, and records it in moved.
func become(node, t *Tensor, moved map[*C.struct_ggml_tensor]bool) {
	n, v := node.ptr(), t.ptr()
	if n._type != v._type || ne4(node) != ne4(t) {
		opErrorf("fuse", "cannot replace %s by %s", node, t)
	}
	n.op, n.op_params, n.src, n.nb = v.op, v.op_params, v.src, v.nb
	n.view_src, n.view_offs = v.view_src, v.view_offs
	moved[n] = true
}
