//go:build cgo

package ggml

/*
#include "ggml.h"
*/
import "C"

// LoRASite is one low-rank adapter of a graph built from ggml's generic ops, for
// FuseLoRA: its input X [in, N], its A [in, r] and B [r, out], and Up, the tensor
// holding Scale·B(A·X) [out, N] (whatever ops computed it, padded or not), with A·X
// computed as mul_mat(A, X).
//
// Sum, if not nil, is the node that adds Up to the frozen weight's output (base + Up,
// same shape): the fused op then computes it whole (LoRAOnto), and the backward op
// likewise adds X's share of the gradient to its other shares. With Sum nil, both
// additions are left to ggml's ADD.
type LoRASite struct {
	X, A, B, Up, Sum *Tensor
	Scale            float32
}

// FuseLoRA computes each site's Up with LoRA and, in a graph with a backward pass, the
// gradients of A and B and the adapter's share of X's gradient with LoRABack, by the
// same rewrite as FuseAttention (see there for why after autograd): Up and those
// gradients become views of the fused ops' results. X's share is the term autograd made
// for mul_mat(A, X) (its out_prod of A), which autograd adds to X's other gradients;
// where that addition is a node of its own, the fused op computes it too
// (LoRABackOnto), as it does Sum in the forward pass. Both save a pass over
// activations per adapter and give the same bits as the additions they replace.
// Call it before Checkpoint and run the result through ExpandFrom. It returns the
// number of sites fused.
func (g *Graph) FuseLoRA(c *Context, sites []LoRASite) int {
	cg := g.live()
	index := g.nodeIndex()
	// xTerm: the out_prod(A, gᵀ) node of each A, X's share of the gradient.
	xTerm := map[*C.struct_ggml_tensor]*C.struct_ggml_tensor{}
	for i := g.forwardNodes(); i < int(C.ggml_graph_n_nodes(cg)); i++ {
		if node := C.ggml_graph_node(cg, C.int(i)); node.op == C.GGML_OP_OUT_PROD && node.src[0] != nil {
			xTerm[node.src[0]] = node
		}
	}
	moved := map[*C.struct_ggml_tensor]bool{}
	for _, s := range sites {
		at, ok := index[s.Up.ptr()]
		if !ok || at >= g.forwardNodes() {
			opErrorf("fuse lora", "%s is not a node of the forward pass", s.Up)
		}
		if s.Up.Type() != TypeF32 || ne4(s.Up) != [4]int64{int64(s.B.Ne(1)), int64(s.X.Ne(1)), 1, 1} {
			opErrorf("fuse lora", "%s is not the adapter output [%d, %d]", s.Up, s.B.Ne(1), s.X.Ne(1))
		}
		var gradUp, gA, gB, gX *Tensor
		if g.forward > 0 {
			gradUp, gA, gB, gX = g.Grad(s.Up), g.Grad(s.A), g.Grad(s.B), g.Grad(s.X)
		}
		var y *Tensor
		if base := g.addend(s.Sum, s.Up, index); base != nil {
			// Up then has no consumer left and drops out of the graph.
			y = c.LoRAOnto(base, s.X, s.A, s.B, s.Scale)
			at = index[s.Sum.ptr()]
			become(s.Sum, viewAll(c, y), moved)
		} else {
			y = c.LoRA(s.X, s.A, s.B, s.Scale)
			become(s.Up, viewAll(c, y), moved)
		}
		g.added = append(g.added, added{p: y.p.src[0], anchor: at}, added{p: y.p, anchor: at})
		if gradUp == nil || gA == nil || gB == nil {
			continue
		}
		term := xTerm[s.A.p]
		var sum *C.struct_ggml_tensor
		var dx, dA, dB *Tensor
		if sum = g.soleConsumer(term); sum != nil && gX != nil && s.Sum != nil {
			t := &Tensor{p: term, c: c}
			if acc := g.addend(&Tensor{p: sum, c: c}, t, index); acc != nil {
				dx, dA, dB = c.LoRABackOnto(acc, s.X, s.A, s.B, y, gradUp, s.Scale)
			}
		}
		if dx == nil {
			sum = nil
			dx, dA, dB = c.LoRABack(s.X, s.A, s.B, y, gradUp, s.Scale)
		}
		bx, bw := dx.p.view_src, dA.p.view_src
		g.added = append(g.added, added{p: bx, anchor: -1}, added{p: bw, anchor: -1})
		if grad := bx.src[2]; grad != gradUp.p {
			g.added = append(g.added, added{p: grad, anchor: -1}) // a contiguous copy
		}
		become(gA, dA, moved)
		become(gB, dB, moved)
		if gX != nil {
			switch {
			case term == nil:
				opErrorf("fuse lora", "no gradient term of %s for %s", s.X, s.A)
			case sum != nil:
				become(&Tensor{p: sum, c: c}, dx, moved) // term drops out with its only consumer
			default:
				become(&Tensor{p: term, c: c}, dx, moved)
			}
		}
	}
	g.followMoved(moved)
	return len(sites)
}

// addend returns the other operand of sum = ADD(other, t) or ADD(t, other) where the
// fused op can add it as it writes: an F32 of t's shape with contiguous rows, and t
// read by nothing else. It returns nil where sum is nil or not such a node.
func (g *Graph) addend(sum, t *Tensor, index map[*C.struct_ggml_tensor]int) *Tensor {
	if sum == nil || t == nil || sum.p.op != C.GGML_OP_ADD || g.soleConsumer(t.p) != sum.p {
		return nil
	}
	if _, ok := index[sum.p]; !ok {
		return nil
	}
	other := sum.p.src[0]
	if other == t.p {
		other = sum.p.src[1]
	} else if sum.p.src[1] != t.p {
		return nil
	}
	o := &Tensor{p: other, c: sum.c}
	if o.Type() != TypeF32 || ne4(o) != ne4(t) || ne4(sum) != ne4(t) || other.nb[0] != 4 || t.Ne(2) != 1 || t.Ne(3) != 1 {
		return nil
	}
	return o
}

// soleConsumer returns the one node, or tensor made by an earlier fusion, that reads
// p, or nil where none or several do (or p is nil).
func (g *Graph) soleConsumer(p *C.struct_ggml_tensor) *C.struct_ggml_tensor {
	if p == nil {
		return nil
	}
	cg := g.live()
	var found *C.struct_ggml_tensor
	n := 0
	visit := func(q *C.struct_ggml_tensor) {
		for _, src := range q.src {
			if src == p {
				found = q
				n++
				return
			}
		}
		if q.view_src == p {
			found = q
			n++
		}
	}
	for i := 0; i < int(C.ggml_graph_n_nodes(cg)); i++ {
		visit(C.ggml_graph_node(cg, C.int(i)))
	}
	for _, a := range g.added {
		visit(a.p)
	}
	if n != 1 {
		return nil
	}
	return found
}
