//go:build cgo

package ggml

/*
#include "ggml.h"
*/
import "C"

// FuseCrossEntropy computes loss, a CrossEntropyLoss of logits against one-hot labels,
// with CrossEntropyTargets over targets instead (the labels' class indices, which the
// caller fills; the labels are then read by nothing) and, in a graph with a backward
// pass, the logits' gradient with CrossEntropyTargetsBack: by the same rewrite as
// FuseAttention (see there for why after autograd), loss and that gradient become the
// fused ops' results. Call it before Checkpoint and run the result through ExpandFrom.
func (g *Graph) FuseCrossEntropy(c *Context, logits, loss, targets *Tensor) {
	index := g.nodeIndex()
	at, ok := index[loss.ptr()]
	if !ok || at >= g.forwardNodes() || loss.Op() != "CROSS_ENTROPY_LOSS" || loss.Src(0).ptr() != logits.ptr() {
		opErrorf("fuse cross entropy", "%s is not the cross-entropy loss of %s in the forward pass", loss, logits)
	}
	var gradLoss, gradLogits *Tensor
	if g.forward > 0 {
		gradLoss, gradLogits = g.Grad(loss), g.Grad(logits)
	}
	moved := map[*C.struct_ggml_tensor]bool{}
	l := c.CrossEntropyTargets(logits, targets)
	sum := l.p.src[0]
	g.added = append(g.added, added{p: sum.src[0].view_src, anchor: at}, added{p: sum.src[0], anchor: at}, added{p: sum, anchor: at})
	become(loss, l, moved)
	if gradLoss != nil && gradLogits != nil {
		d := c.CrossEntropyTargetsBack(logits, targets, loss, gradLoss)
		g.added = append(g.added, added{p: d.p, anchor: -1})
		become(gradLogits, d, moved)
	}
	g.followMoved(moved)
}
