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
type LoRASite struct {
	X, A, B, Up *Tensor
	Scale       float32
}

// FuseLoRA computes each site's Up with LoRA and, in a graph with a backward pass, the
// gradients of A and B and the adapter's share of X's gradient with LoRABack, by the
// same rewrite as FuseAttention (see there for why after autograd): Up and those
// gradients become views of the fused ops' results. X's share is the term autograd made
// for mul_mat(A, X) (its out_prod of A), which autograd adds to X's other gradients.
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
		y := c.LoRA(s.X, s.A, s.B, s.Scale)
		become(s.Up, viewAll(c, y), moved)
		g.added = append(g.added, added{p: y.p.src[0], anchor: at}, added{p: y.p, anchor: at})
		if gradUp == nil || gA == nil || gB == nil {
			continue
		}
		dx, dA, dB := c.LoRABack(s.X, s.A, s.B, s.Up, gradUp, s.Scale)
		bx, bw := dx.p.view_src, dA.p.view_src
		g.added = append(g.added, added{p: bx, anchor: -1}, added{p: bw, anchor: -1})
		if grad := bx.src[2]; grad != gradUp.p {
			g.added = append(g.added, added{p: grad, anchor: -1}) // a contiguous copy
		}
		become(gA, dA, moved)
		become(gB, dB, moved)
		if term := xTerm[s.A.p]; gX != nil {
			if term == nil {
				opErrorf("fuse lora", "no gradient term of %s for %s", s.X, s.A)
			}
			become(&Tensor{p: term, c: c}, dx, moved)
		}
	}
	g.followMoved(moved)
	return len(sites)
}
