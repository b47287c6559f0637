//go:build cgo

package ggml

/*
#include <stdint.h>
#include <string.h>
#include "ggml.h"
#include "linear_loss.h"

// ecotune_lce_op makes one of linear_loss.c's ops: 0 state, 1 probs, 2 acc, 3 loss,
// 4 back; v0 is the chunk's first vocabulary row (state and probs).
static struct ggml_tensor * ecotune_lce_op(struct ggml_context * ctx, int which,
		struct ggml_tensor ** args, int n_args, int64_t ne0, int64_t ne1, int64_t v0) {
	ggml_custom_op_t f = which == 0 ? ecotune_lce_state : which == 1 ? ecotune_lce_probs :
		which == 2 ? ecotune_lce_acc : which == 3 ? ecotune_lce_loss : ecotune_lce_back;
	return ggml_custom_4d(ctx, GGML_TYPE_F32, ne0, ne1, 1, 1, args, n_args, f, GGML_N_TASKS_MAX,
		(void *)(intptr_t)v0);
}
*/
import "C"

// The ops of linear_loss.c, by ecotune_lce_op's numbering.
const (
	lceState = iota
	lceProbs
	lceAcc
	lceLoss
	lceBack
)

var lceNames = [...]string{"linear loss state", "linear loss probs", "linear loss acc", "linear loss", "linear loss back"}

func (c *Context) lceOp(which int, args []*Tensor, ne0, ne1, v0 int) *Tensor {
	ps := make([]*C.struct_ggml_tensor, len(args))
	for i, a := range args {
		ps[i] = a.p
	}
	ctx := c.reserve("linear cross entropy", 1)
	return c.wrap(C.ecotune_lce_op(ctx, C.int(which), &ps[0], C.int(len(ps)), C.int64_t(ne0), C.int64_t(ne1), C.int64_t(v0))).SetName(lceNames[which])
}

// lceChunkBytes bounds what one chunk of LinearCrossEntropy holds at a time: its
// transposed weights, and its logits and probabilities.
const lceChunkBytes = 32 << 20

// LinearCrossEntropyRows is the number of vocabulary rows LinearCrossEntropy and
// FuseLinearCrossEntropy take at a time when given rows ≤ 0, for hidden states of
// width embd, k targets and a transposed copy of type t: as many as keep that copy ([rows,
// embd]) and the chunk's logits and probabilities (two [rows, k] F32) each within 32 MiB
// (a little more once evened out), a multiple of 64, and about the same for every chunk
// of a vocabulary of vocab rows.
//
// A multiple of 64 because the input gradient's products sum over a chunk's rows, and
// ggml hands a BF16 product to its fast kernels (llamafile's) only when that sum's length
// is a multiple of 32: at 2,672 rows a chunk, a 3B model's chunks multiplied three times
// slower than the whole matrix did.
func LinearCrossEntropyRows(vocab, embd, k int, t Type) int {
	rows := min(lceChunkBytes/max(1, embd*t.TypeSize()), lceChunkBytes/max(1, 8*k))
	rows = max(64, rows/64*64)
	if rows >= vocab {
		return vocab
	}
	chunks := (vocab + rows - 1) / rows
	return ((vocab+chunks-1)/chunks + 63) / 64 * 64
}

// LinearCrossEntropy returns CrossEntropyTargets(MulMat(w, h), targets), the mean over
// the K columns of h [E, K] of -log softmax(wᵀ·h)[target] for the output matrix w [E, V]
// (any type MulMat takes, rows contiguous), without ever holding the logits [V, K]: it
// takes rows vocabulary rows of w at a time (LinearCrossEntropyRows when rows ≤ 0),
// multiplies them by h with ggml's product and folds the chunk's logits into each
// column's running maximum and sum of exponentials (fused CPU ops, see linear_loss.c).
// Targets must lie in [0, V): the ops do not check them.
func (c *Context) LinearCrossEntropy(w, h, targets *Tensor, rows int) *Tensor {
	sameCtx("linear cross entropy", c, w, h, targets)
	checkLinearCrossEntropy(w, h, targets)
	if rows <= 0 {
		// No transposed copy, nor probabilities: only the logits count.
		rows = LinearCrossEntropyRows(w.Ne(1), 0, h.Ne(1), TypeF32)
	}
	state, _ := c.lceChunks(w, h, targets, rows, nil)
	return c.lceMean(nil, state)
}

// lceChunks builds the chunks' ops and returns the state after the last one and, when
// wT gives each chunk's transposed weights [n, E] (the rows v0..v0+n of w), the sum over
// the chunks of their products with the chunks' probabilities (see linear_loss.c).
//
// Each op reads the previous chunk's result as its first source, so that ggml, which
// adds a node's sources depth first in their order, lists the chunks one after another
// and the graph allocator frees each chunk's tensors before the next chunk's are made.
func (c *Context) lceChunks(w, h, targets *Tensor, rows int, wT func(v0, n int) *Tensor) (state, acc *Tensor) {
	E, V, K := w.Ne(0), w.Ne(1), h.Ne(1)
	for v0 := 0; v0 < V; v0 += rows {
		n := min(rows, V-v0)
		z := c.MulMat(c.View(w, []int{E, n}, []int{w.Nb(1)}, v0*w.Nb(1)), h)
		if state == nil {
			state = c.lceOp(lceState, []*Tensor{z, targets}, K, 4, v0)
		} else {
			state = c.lceOp(lceState, []*Tensor{state, z, targets}, K, 4, v0)
		}
		if wT == nil {
			continue
		}
		p := c.lceOp(lceProbs, []*Tensor{z, state, targets}, n, K, v0)
		var u *Tensor
		if at := wT(v0, n); at.Type() == TypeF16 {
			u = c.halfProduct(at, p) // see OutProdsAsMatMul
		} else {
			u = c.MulMat(at, p)
		}
		if acc == nil {
			acc = u
		} else {
			acc = c.lceOp(lceAcc, []*Tensor{acc, u, state}, E, K, 0)
		}
	}
	return state, acc
}

// lceMean returns the mean of the columns' losses after the last state; acc, if not
// nil, is a source only so that the chunks' products are computed with their logits
// (see lceChunks), not after the whole forward pass, which would keep every chunk's
// logits alive in between.
func (c *Context) lceMean(acc, state *Tensor) *Tensor {
	K := state.Ne(0)
	args := []*Tensor{state}
	if acc != nil {
		args = []*Tensor{acc, state}
	}
	l := c.lceOp(lceLoss, args, K, 2, 0)
	rows := c.wrap(C.ggml_view_1d(c.reserve("linear cross entropy", 1), l.p, C.int64_t(K), 0))
	return c.Scale(c.Sum(rows), 1/float32(K))
}

// FuseLinearCrossEntropy computes loss, a CrossEntropyLoss of MulMat(w, h) against
// one-hot labels, as LinearCrossEntropy does over targets (the labels' class indices,
// which the caller fills; the labels and the logits are then read by nothing) and, in a
// graph with a backward pass, h's gradient in the same chunks: each chunk's
// probabilities times its rows of w, through a transposed copy of those rows alone
// (kept(w)'s rows when kept returns a transposed copy of w, else made from w, a
// quantized w dequantized to quantT by DequantTranspose). Neither the logits nor their
// gradient ([V, K] each) nor a transposed copy of the whole of w is held at any time:
// the memory a chunk needs is bounded by LinearCrossEntropyRows's choice, whatever V.
//
// w must get no gradient (a trained output layer needs the logits' gradient: use
// FuseCrossEntropy). The rewrite is FuseCrossEntropy's (see FuseAttention for why after
// autograd): loss and h's gradient become the fused ops' results. Call it before
// Checkpoint and OutProdsAsMatMul and run the result through ExpandFrom. rows ≤ 0 picks
// LinearCrossEntropyRows.
func (g *Graph) FuseLinearCrossEntropy(c *Context, w, h, loss, targets *Tensor, rows int, quantT Type, kept func(*Tensor) *Tensor) {
	index := g.nodeIndex()
	at, ok := index[loss.ptr()]
	if !ok || at >= g.forwardNodes() || loss.Op() != "CROSS_ENTROPY_LOSS" {
		opErrorf("fuse linear cross entropy", "%s is not a cross-entropy loss in the forward pass", loss)
	}
	if lg := loss.ptr().src[0]; lg.op != C.GGML_OP_MUL_MAT || lg.src[0] != w.ptr() || lg.src[1] != h.ptr() {
		opErrorf("fuse linear cross entropy", "%s is not the loss of MulMat(%s, %s)", loss, w, h)
	}
	checkLinearCrossEntropy(w, h, targets)
	if !quantT.valid() || quantT.IsQuantized() {
		opErrorf("fuse linear cross entropy", "a dequantized weight needs a float type, not %s", quantT)
	}
	var gradLoss, gradH *Tensor
	if g.forward > 0 {
		if g.Grad(w) != nil {
			opErrorf("fuse linear cross entropy", "%s gets a gradient, which needs the logits' (use FuseCrossEntropy)", w)
		}
		gradLoss, gradH = g.Grad(loss), g.Grad(h)
	}
	train := gradLoss != nil && gradH != nil
	E, K := w.Ne(0), h.Ne(1)
	if rows <= 0 {
		t := quantT
		if !w.Type().IsQuantized() {
			t = w.Type()
		}
		rows = LinearCrossEntropyRows(w.Ne(1), E, K, t)
	}
	var wT func(v0, n int) *Tensor
	if train {
		var whole *Tensor
		if kept != nil {
			if t := kept(w); t != nil && t.Ne(0) == w.Ne(1) && t.Ne(1) == E && t.IsContiguous() {
				whole = t
			}
		}
		wT = func(v0, n int) *Tensor {
			if whole != nil {
				return c.View(whole, []int{n, E}, []int{whole.Nb(1)}, v0*whole.Nb(0))
			}
			at, ok := transposedCopy(c, c.View(w, []int{E, n}, []int{w.Nb(1)}, v0*w.Nb(1)), quantT, map[int]*Tensor{}, true)
			if !ok {
				opErrorf("fuse linear cross entropy", "cannot transpose %s", w)
			}
			return at
		}
	}
	moved := map[*C.struct_ggml_tensor]bool{}
	state, acc := c.lceChunks(w, h, targets, rows, wT)
	become(loss, c.lceMean(acc, state), moved)
	if train {
		d := c.lceOp(lceBack, []*Tensor{acc, state, c.GetRows(w, targets), gradLoss}, E, K, 0)
		g.added = append(g.added, added{p: d.p, anchor: -1})
		become(gradH, d, moved)
	}
	g.followMoved(moved)
}

func checkLinearCrossEntropy(w, h, targets *Tensor) {
	if w.Ne(2) != 1 || w.Ne(3) != 1 || w.p.nb[0] != C.size_t(w.Type().TypeSize()) {
		opErrorf("linear cross entropy", "w %s must be a 2-D matrix with contiguous rows", w)
	}
	if h.Type() != TypeF32 || h.p.nb[0] != 4 || h.Ne(0) != w.Ne(0) || h.Ne(2) != 1 || h.Ne(3) != 1 {
		opErrorf("linear cross entropy", "h %s must be a 2-D F32 matrix with contiguous rows of %d", h, w.Ne(0))
	}
	if targets.Type() != TypeI32 || !targets.IsContiguous() || targets.Elements() != h.Ne(1) {
		opErrorf("linear cross entropy", "targets %s must be %d contiguous I32 values", targets, h.Ne(1))
	}
}
