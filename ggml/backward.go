//go:build cgo

package ggml

/*
#include "ggml.h"
*/
import "C"

// OutProdsAsMatMul rewrites the OUT_PROD nodes of the backward pass BuildBackward
// made, by three identities:
//
//	out_prod(a, transpose(x)) = mul_mat(cont(transpose(a)), x)
//	out_prod(a, b)            = mul_mat(cont(transpose(a)), cont(transpose(b)))
//	out_prod(a, b)            = cont(transpose(out_prod(b, a)))
//
// The first is every input gradient, autograd's out_prod(W, gᵀ) for y = mul_mat(W, x):
// the transposed copy of a quantized W is dequantized to type quantT first, and that of
// a frozen F32 W rounded to it. The second is a gradient of a mul_mat's first operand
// (attention's scores and values), rewritten where the product outweighs the two
// transpositions; the third is such a gradient with a short first dimension (a LoRA B's
// rank), whose OUT_PROD would run rank-long rows.
//
// Why: the CPU backend's OUT_PROD is a loop of axpy rows, 3–30× slower than a matrix
// product of the same size (34× for IQ4_NL, whose rows it dequantizes one at a time),
// and the CUDA backend has no quantized OUT_PROD at all, so a QLoRA graph would send
// it to the CPU. A transposed copy is one pass over an operand that the product reads
// once per row of the other, and the graph allocator frees it right after its use, so
// a weight's copy costs one weight's worth of scratch memory, not a second model.
//
// With fused, a product by an F16 copy scales each row of its F32 operand into F16's
// range first (see half.c): ggml would round the gradients to F16 as they are, and
// lose the small ones.
//
// The rewritten nodes keep their identity, so gradients read with Grad stay valid,
// but the graph's node order no longer lists each new copy before its use: compute the
// result through a new graph filled by ExpandFrom. It returns the number of nodes
// rewritten. New tensors are made in c.
//
// kept, if not nil, returns a transposed copy of a leaf kept elsewhere (a frozen
// weight's, made once), or nil; the rewrite then multiplies by it instead of making one.
// With fused, a quantized weight's copy is made by DequantTranspose, one op the CPU runs,
// instead of three generic ones that every backend runs.
func (g *Graph) OutProdsAsMatMul(c *Context, quantT Type, kept func(*Tensor) *Tensor, fused bool) int {
	cg := g.live()
	if !quantT.valid() || quantT.IsQuantized() {
		opErrorf("out_prod as mul_mat", "a dequantized weight needs a float type, not %s", quantT)
	}
	rows := map[int]*Tensor{} // I32 0..n-1 index vectors, one per row count
	n := 0
	for i := 0; i < int(C.ggml_graph_n_nodes(cg)); i++ {
		node := C.ggml_graph_node(cg, C.int(i))
		if node.op != C.GGML_OP_OUT_PROD || node.src[0] == nil || node.src[1] == nil {
			continue
		}
		a, b := &Tensor{p: node.src[0], c: c}, &Tensor{p: node.src[1], c: c}
		var x *Tensor
		if b.p.op == C.GGML_OP_TRANSPOSE {
			// The product sums over a's rows (a.ne1 of them): a LoRA rank of 8 is too
			// short a sum for the CPU's tiled matrix kernels, which need multiples of
			// 16 and fall back to a dot product per output value, where OUT_PROD's
			// loop of long axpy rows is quick (for the types it takes: F32 and F16).
			if a.Ne(1) < 64 && (a.Type() == TypeF32 || a.Type() == TypeF16) {
				continue
			}
			x = &Tensor{p: b.p.src[0], c: c}
		} else {
			if a.Ne(0) < 32 && b.Ne(0) >= 4*a.Ne(0) && sameOuter(a, b) {
				// OUT_PROD's axpy rows run along its result's first dimension: a
				// LoRA B's gradient [r, out] would take r-long rows. The transposed
				// product has out-long rows; transposing the small result back is
				// nearly free.
				t := c.OutProd(b, a)
				node.op = C.GGML_OP_CONT
				for j := range node.op_params {
					node.op_params[j] = 0
				}
				node.src[0] = c.Transpose(t).p
				node.src[1] = nil
				n++
				continue
			}
			// out_prod(a, b) is a.ne0·b.ne0·k multiply-adds after transposing
			// (a.ne0 + b.ne0)·k values; on the CPU a product runs ~6× faster than
			// OUT_PROD and a transposition ~8× slower than a multiply-add, so small
			// outer products (a LoRA rank of 8 on one side) stay as they are.
			if m, k := a.Ne(0), b.Ne(0); m*k <= 8*(m+k) {
				continue
			}
			x = transpose(c, b)
		}
		if x.p.nb[0] != C.size_t(x.Type().TypeSize()) {
			x = c.Cont(x) // mul_mat reads rows of its second operand contiguously
		}
		var at *Tensor
		if kept != nil && a.p.op == C.GGML_OP_NONE {
			if t := kept(a); t != nil && t.Ne(0) == a.Ne(1) && t.Ne(1) == a.Ne(0) && t.IsContiguous() {
				at = t
			}
		}
		if at == nil {
			var ok bool
			if at, ok = transposedCopy(c, a, quantT, rows, fused); !ok {
				continue
			}
		}
		if fused && at.Type() == TypeF16 && x.Type() == TypeF32 {
			become(&Tensor{p: node, c: c}, c.halfProduct(at, x), map[*C.struct_ggml_tensor]bool{})
			n++
			continue
		}
		// Turn the node into the mul_mat in place: same shape and type (F32), and every
		// consumer already points at it.
		node.op = C.GGML_OP_MUL_MAT
		for j := range node.op_params {
			node.op_params[j] = 0
		}
		node.src[0] = at.p
		node.src[1] = x.p
		n++
	}
	return n
}

// sameOuter reports whether a and b agree in dimensions 2 and 3 (no broadcasting).
func sameOuter(a, b *Tensor) bool { return a.Ne(2) == b.Ne(2) && a.Ne(3) == b.Ne(3) }

// transposedCopy returns a contiguous aᵀ: a's own type for float types but a frozen F32
// weight (quantT), quantT for a quantized 2-D weight (dequantized by get_rows, which
// every backend has for most types, where a cpy from a quantized type is not; or, fused
// or for a weight in the CPU's repacking buffer, by DequantTranspose).
// ok is false for a tensor it cannot copy (a quantized tensor of more than two
// dimensions).
func transposedCopy(c *Context, a *Tensor, quantT Type, rows map[int]*Tensor, fused bool) (at *Tensor, ok bool) {
	typ := a.Type()
	switch {
	case typ == TypeF32 && quantT != TypeF32 && frozen(a):
		// A frozen F32 weight's product goes at the compute type too, as a kept copy's
		// does (see trainer's copyType): one more pass over the weight, for a product
		// 1.3–1.45× (F16 on AVX2) to 2× (BF16 on AVX512-BF16) faster.
		return c.Cast(transpose(c, a), quantT), true
	case typ == TypeF32 || typ == TypeF16 || typ == TypeBF16:
		return transpose(c, a), true
	case !typ.IsQuantized() || a.p.ne[2] != 1 || a.p.ne[3] != 1:
		return nil, false
	case fused && a.IsContiguous(), a.Repacked():
		// A repacked weight has no get_rows; the fused op reads its layout.
		return c.DequantTranspose(a, quantT), true
	}
	in, out := a.Ne(0), a.Ne(1)
	// CUDA's get_rows takes IQ4_NL (and MXFP4) rows only in whole 256-value super-blocks.
	// The rows of a weight lie back to back, so k of them read as one longer row dequantize
	// to the same values: SmolLM2's 576-wide rows, say, go 4 at a time.
	k := superBlockRows(in)
	if out%k != 0 || !a.IsContiguous() {
		k = 1
	}
	src := a
	if k > 1 {
		src = c.wrap(C.ggml_view_2d(c.reserve("out_prod as mul_mat", 1), a.p, C.int64_t(in*k), C.int64_t(out/k), C.size_t(k)*a.p.nb[1], 0))
	}
	idx := rows[out/k]
	if idx == nil {
		idx = c.wrap(C.ggml_cast(c.reserve("out_prod as mul_mat", 1),
			c.wrap(C.ggml_arange(c.reserve("out_prod as mul_mat", 1), 0, C.float(out/k), 1)).p,
			C.GGML_TYPE_I32))
		rows[out/k] = idx
	}
	deq := c.GetRows(src, idx)
	if k > 1 {
		deq = c.Reshape(deq, in, out)
	}
	at = transpose(c, deq)
	if quantT != TypeF32 {
		at = c.Cast(at, quantT)
	}
	return at, true
}

// frozen reports whether a is, or views, a tensor no op computes and no gradient
// updates: a frozen weight.
func frozen(a *Tensor) bool {
	t := a.p
	if t.view_src != nil {
		t = t.view_src
	}
	return t.op == C.GGML_OP_NONE && t.flags&C.GGML_TENSOR_FLAG_PARAM == 0
}

// transpose returns a contiguous copy of a with dimensions 0 and 1 swapped. A plain
// cont(transpose(a)) reads a with a stride of a whole row for every element it writes,
// so a matrix with more rows than the cache has lines (the output layer's 32,000) misses
// on nearly every read; taking the rows in bands of 64 keeps the lines in flight few:
// first each band is transposed into a tile, then the tiles' rows are put in place,
// which copies runs of 64 values. Shorter matrices take one pass.
func transpose(c *Context, a *Tensor) *Tensor {
	n, m, h := a.Ne(0), a.Ne(1), a.Ne(2)
	// Below a few thousand rows the lines in flight fit the cache anyway, and the
	// second pass would only add time.
	const band = 64
	if !a.IsContiguous() || a.Ne(3) != 1 || m%band != 0 || m < 4096 {
		return c.Cont(c.Transpose(a))
	}
	t := c.Cont(c.Permute(c.Reshape(a, n, band, m/band, h), 1, 0, 2, 3)) // [band, n, m/band, h]
	t = c.Cont(c.Permute(t, 0, 2, 1, 3))                                 // [band, m/band, n, h]
	return c.Reshape(t, m, n, h)
}

// ContiguousRopeGrads copies the source of every ROPE_BACK node that CUDA's rope
// kernel would not take: it wants heads and tokens as the only strided dimensions
// (ggml_is_contiguous_2), and autograd hands it attention's gradient as the view that
// undoes the permutation of heads and tokens, whose sequences then lie T·H rows apart
// where the kernel expects H. Left alone, the scheduler runs every layer's ROPE_BACK
// on the CPU and sends its gradients back and forth. The copy is one pass over a
// layer's queries or keys, which the CPU pays too, so the graph is the same on every
// backend. As with OutProdsAsMatMul, compute the result through a new graph filled
// by ExpandFrom. It returns the number of sources copied; new tensors are made in c.
func (g *Graph) ContiguousRopeGrads(c *Context) int {
	cg := g.live()
	n := 0
	for i := 0; i < int(C.ggml_graph_n_nodes(cg)); i++ {
		node := C.ggml_graph_node(cg, C.int(i))
		src := node.src[0]
		if node.op != C.GGML_OP_ROPE_BACK || src == nil ||
			src.nb[0] == C.ggml_type_size(src._type) && bool(C.ggml_is_contiguous_2(src)) {
			continue
		}
		node.src[0] = c.Cont(&Tensor{p: src, c: c}).p
		n++
	}
	return n
}
