package trainer

import (
	"fmt"
	"math"

	"github.com/ecotune/ecotune/ggml"
)

// builder builds one graph of a model for a batch of B sequences of T tokens each,
// laid out sequence-major (token t of sequence s is column s·T + t).
type builder struct {
	c    *ggml.Context
	m    *Model
	lora *LoRA // nil: the base model alone
	B, T int

	tokens  *ggml.Tensor // I32 [B·T]
	pos     *ggml.Tensor // I32 [B·T]: each token's position in its sequence, or in its document when packed
	starts  *ggml.Tensor // I32 [B·T] when packed: the position where each token's document begins
	mask    *ggml.Tensor // F32 [T, T] causal mask ([T, T, heads·B] when packed), made on first use by generic attention
	swaMask *ggml.Tensor // the same with a sliding window, made on first use when T exceeds the window

	// embGroup and embPick look tokens up in embeddings read k rows at a time (see
	// embed); made on first use.
	embGroup, embPick *ggml.Tensor
	embK              int

	// dropout > 0 adds one input mask per adapted module, filled before each run.
	dropout  float32
	dropMask []*ggml.Tensor

	// pad and padScaled are the input matrices that pad the adapters' rank, the second
	// also scaling by the adapters' scale (see loraUp); made on first use.
	pad, padScaled *ggml.Tensor
	scale          float32

	// fuse says how attention and adapters are built; with fuseSites, attnSites and
	// loraSites list them for ggml.Graph.FuseAttention and FuseLoRA.
	fuse      fuseMode
	attnSites []ggml.AttentionSite
	loraSites []ggml.LoRASite

	// checkpoints are the layers' inputs and the last layer's output, where gradient
	// checkpointing restarts the forward pass.
	checkpoints []*ggml.Tensor
	// ck says which products of the base weights linear records in keep, which gradient
	// checkpointing then stores rather than recomputes (checkpointKeepFFN, checkpointKeepAll).
	ck   checkpointing
	keep []ggml.Kept
}

// fuseMode is how a builder makes attention and adapters.
type fuseMode int

const (
	fuseNone  fuseMode = iota // ggml's generic ops (mul_mat, soft_max), which autograd differentiates
	fuseOps                   // ggml.CausalAttention and ggml.LoRA: forward graphs on the CPU
	fuseSites                 // generic ops, recorded for ggml.Graph.FuseAttention and FuseLoRA after autograd
)

// newBuilder starts a graph of B sequences of T tokens; packed ones hold several
// documents each (see Batch.Starts).
func newBuilder(c *ggml.Context, m *Model, lora *LoRA, B, T int, packed bool, dropout float32) *builder {
	b := &builder{c: c, m: m, lora: lora, B: B, T: T, dropout: dropout}
	b.tokens = c.NewTensor(ggml.TypeI32, B*T).SetName("tokens").SetInput()
	b.pos = c.NewTensor(ggml.TypeI32, B*T).SetName("positions").SetInput()
	if packed {
		b.starts = c.NewTensor(ggml.TypeI32, B*T).SetName("doc_starts").SetInput()
	}
	return b
}

// setInputs fills the builder's inputs (after the scheduler allocated them): the tokens
// and, for a packed graph, each token's document start (see Batch.Starts).
func (b *builder) setInputs(tokens, starts []int32) error {
	if (starts != nil) != (b.starts != nil) {
		return fmt.Errorf("trainer: a batch packed %t on a graph packed %t", starts != nil, b.starts != nil)
	}
	if starts != nil {
		// The fused attention op trusts the starts; a bad one would read out of bounds.
		if err := checkStarts(starts, b.B, b.T); err != nil {
			return err
		}
		if err := setIfReadI32(b.starts, starts); err != nil {
			return err
		}
	}
	if b.embGroup == nil {
		if err := b.tokens.SetI32(tokens); err != nil {
			return err
		}
	} else {
		// Token t is row t%k of group t/k; the groups' rows lie k to a token.
		group, pick := make([]int32, len(tokens)), make([]int32, len(tokens))
		k := int32(b.embK)
		for i, t := range tokens {
			group[i], pick[i] = t/k, int32(i)*k+t%k
		}
		if err := b.embGroup.SetI32(group); err != nil {
			return err
		}
		if err := b.embPick.SetI32(pick); err != nil {
			return err
		}
	}
	pos := make([]int32, b.B*b.T)
	for i := range pos {
		pos[i] = int32(i % b.T)
		if starts != nil {
			pos[i] -= starts[i]
		}
	}
	if err := b.pos.SetI32(pos); err != nil {
		return err
	}
	// Fused adapters (ggml.Graph.FuseLoRA) leave the padding unread, and fused
	// attention the masks: the scheduler gives an input no node reads no memory.
	if b.pad != nil {
		r, rp := b.pad.Ne(0), b.pad.Ne(1)
		id, ids := make([]float32, r*rp), make([]float32, r*rp)
		for i := 0; i < r; i++ {
			id[i*r+i], ids[i*r+i] = 1, b.scale
		}
		if err := setIfRead(b.pad, id); err != nil {
			return err
		}
		if err := setIfRead(b.padScaled, ids); err != nil {
			return err
		}
	}
	if b.swaMask != nil {
		if err := setIfRead(b.swaMask, causalMask(b.T, b.m.HP.SlidingWindow, starts, b.m.HP.Heads)); err != nil {
			return err
		}
	}
	if b.mask != nil {
		return setIfRead(b.mask, causalMask(b.T, b.T, starts, b.m.HP.Heads))
	}
	return nil
}

// checkStarts checks that starts (B·T) describe documents laid end to end: along each
// sequence, a position starts a document (its own index) or continues the one before.
func checkStarts(starts []int32, B, T int) error {
	if len(starts) != B*T {
		return fmt.Errorf("trainer: %d document starts for %d×%d positions", len(starts), B, T)
	}
	for s := 0; s < B; s++ {
		for t := 0; t < T; t++ {
			if st := starts[s*T+t]; st != int32(t) && (t == 0 || st != starts[s*T+t-1]) {
				return fmt.Errorf("trainer: sequence %d position %d: document start %d is neither the position nor the one before's", s, t, st)
			}
		}
	}
	return nil
}

func setIfReadI32(t *ggml.Tensor, v []int32) error {
	if !t.Allocated() {
		return nil
	}
	return t.SetI32(v)
}

// setIfRead fills input t unless the graph reads it nowhere: fused adapters
// (ggml.Graph.FuseLoRA) leave the rank padding unread, fused attention the masks, and
// the scheduler gives an input no node reads no memory.
func setIfRead(t *ggml.Tensor, v []float32) error {
	if !t.Allocated() {
		return nil
	}
	return t.SetF32(v)
}

// causalMask is 0 where query i may see key j (i - window < j ≤ i, and j at or after
// i's document start when starts is not nil) and -inf elsewhere: [T, T], or with starts
// [T, T, heads·B], the same for every head of a sequence. Padding needs no mask of its
// own: batches are right-padded, so a padding key is only ever visible to padding
// queries, whose loss weight is zero; nothing a real token computes, nor any gradient,
// depends on padding.
func causalMask(T, window int, starts []int32, heads int) []float32 {
	B := len(starts) / T
	if starts == nil {
		B, heads = 1, 1
	}
	m := make([]float32, B*heads*T*T)
	for s := 0; s < B; s++ {
		one := m[s*heads*T*T : (s*heads+1)*T*T]
		for i := 0; i < T; i++ {
			lo := 0
			if starts != nil {
				lo = int(starts[s*T+i])
			}
			for j := 0; j < T; j++ {
				if j > i || i-j >= window || j < lo {
					one[i*T+j] = float32(math.Inf(-1))
				}
			}
		}
		for h := 1; h < heads; h++ {
			copy(m[(s*heads+h)*T*T:], one)
		}
	}
	return m
}

// attnMask is the mask of a layer with sliding-window attention or not: one for every
// sequence, or when packed one per sequence and head. (A [T, T, 1, B] mask would need
// the scores viewed as [T, T, heads, B] around the softmax, and with the pinned ggml a
// view of soft_max's result lets the graph allocator reuse that result's memory before
// its backward pass reads it.)
func (b *builder) attnMask(swa bool) *ggml.Tensor {
	shape := []int{b.T, b.T}
	if b.starts != nil {
		shape = append(shape, b.m.HP.Heads*b.B)
	}
	if !swa || b.m.HP.SlidingWindow <= 0 || b.T <= b.m.HP.SlidingWindow {
		if b.mask == nil {
			b.mask = b.c.NewTensor(ggml.TypeF32, shape...).SetName("causal_mask").SetInput()
		}
		return b.mask
	}
	if b.swaMask == nil {
		b.swaMask = b.c.NewTensor(ggml.TypeF32, shape...).SetName("swa_mask").SetInput()
	}
	return b.swaMask
}

func (b *builder) weight(l int, name string) *ggml.Tensor { return b.m.blocks[l][name] }

// norm applies the architecture's normalisation with block l's weights name.weight
// (and name.bias when present); l < 0 names a global norm.
func (b *builder) norm(l int, name string, x *ggml.Tensor) *ggml.Tensor {
	var w, bias *ggml.Tensor
	if l < 0 {
		w = b.m.globals[name+".weight"]
		bias = b.m.globals[name+".bias"]
	} else {
		w, bias = b.weight(l, name+".weight"), b.weight(l, name+".bias")
	}
	if b.m.Arch.Norm == NormLayer {
		x = b.layerNorm(x, b.m.HP.NormEps)
	} else {
		x = b.c.RMSNorm(x, b.m.HP.NormEps)
	}
	x = b.c.Mul(x, w)
	if bias != nil {
		x = b.c.Add(x, bias)
	}
	return x
}

// linear returns W·x (+ bias) for block l's weight name.weight, plus s·B(A·x) when the
// LoRA adapts that weight.
func (b *builder) linear(l int, name string, x *ggml.Tensor) *ggml.Tensor {
	full := name + ".weight"
	y := b.c.MulMat(b.weight(l, full), x)
	if bias := b.weight(l, name+".bias"); bias != nil {
		y = b.c.Add(y, bias)
	}
	if k, ok := b.keeps(name, y); ok {
		b.keep = append(b.keep, k)
	}
	if p := b.lora.pair(blockName(l, full)); p != nil {
		in := x
		if b.dropout > 0 {
			dm := b.c.NewTensor(ggml.TypeF32, x.Ne(0), x.Ne(1)).SetInput()
			b.dropMask = append(b.dropMask, dm)
			in = b.c.Mul(x, dm)
		}
		s := b.lora.Scale()
		if b.fuse == fuseOps {
			return b.c.Add(y, b.c.LoRA(in, p.A, p.B, s))
		}
		up := b.loraUp(p.B, b.c.MulMat(p.A, in), s)
		if b.fuse == fuseSites {
			b.loraSites = append(b.loraSites, ggml.LoRASite{X: in, A: p.A, B: p.B, Up: up, Scale: s})
		}
		y = b.c.Add(y, up)
	}
	return y
}

// keeps says whether gradient checkpointing keeps the product y of a layer's weight
// name, and how. Every product but the feed-forward down one is read again by the
// backward pass (the down product's result only joins the residual stream, which the next
// checkpoint holds). With checkpointKeepAll, Q and K stay F32: the attention
// probabilities' gradient takes exponentials of their products, which BF16's 2⁻⁸ relative
// rounding would move by several percent at large scores; the others enter the gradients
// linearly or through SiLU and a norm, so their BF16 copies move them by about that
// rounding.
func (b *builder) keeps(name string, y *ggml.Tensor) (ggml.Kept, bool) {
	switch {
	case b.ck == checkpointKeepFFN && (name == "ffn_gate" || name == "ffn_up"):
		return ggml.Kept{Tensor: y}, true
	case b.ck == checkpointKeepAll && name != "ffn_down":
		k := ggml.Kept{Tensor: y}
		if name != "attn_q" && name != "attn_k" && name != "attn_qkv" {
			k.Stored = b.c.Cast(y, ggml.TypeBF16)
		}
		return k, true
	}
	return ggml.Kept{}, false
}

// attnOpts are the ways architectures differ inside attention.
type attnOpts struct {
	// preScaleQ scales Q by 1/√head_dim before Q·Kᵀ rather than inside the softmax:
	// the same product, but llama.cpp's Phi graphs round the scaled Q to f16, so
	// matching it bit for bit needs the same order.
	preScaleQ bool
	// qScale, when not 0, replaces 1/√head_dim (and implies preScaleQ): Gemma 2.
	qScale float32
	// swa makes the layer attend through a sliding window (HParams.SlidingWindow),
	// with RoPE at HParams.RopeBaseSWA when the file sets one.
	swa bool
}

// qkv returns block l's query, key and value projections of x, [Heads·HeadDim, n] and
// [HeadsKV·HeadDim, n] each, from separate attn_q/k/v weights or one fused attn_qkv
// (rows Q, then K, then V) as llama.cpp's loader accepts either.
func (b *builder) qkv(l int, x *ggml.Tensor) (q, k, v *ggml.Tensor) {
	if b.weight(l, "attn_qkv.weight") == nil {
		return b.linear(l, "attn_q", x), b.linear(l, "attn_k", x), b.linear(l, "attn_v", x)
	}
	c, hp := b.c, b.m.HP
	y := b.linear(l, "attn_qkv", x)
	nq, nkv := hp.Heads*hp.HeadDim, hp.HeadsKV*hp.HeadDim
	elem := y.Nb(0) // bytes per value of y (F32)
	part := func(off, n int, bias string) *ggml.Tensor {
		t := c.Cont(c.View(y, []int{n, y.Ne(1)}, []int{y.Nb(1)}, off*elem))
		// Some converters fuse the weights but keep Q, K and V biases apart.
		if bb := b.weight(l, bias); bb != nil {
			t = c.Add(t, bb)
		}
		return t
	}
	return part(0, nq, "attn_q.bias"), part(nq, nkv, "attn_k.bias"), part(nq+nkv, nkv, "attn_v.bias")
}

// ropeFactors are the per-pair frequency divisors RoPE applies, or nil: Llama 3.1's
// rope_freqs, or LongRoPE's short factors, or its long ones for sequences longer than
// the original context. Hugging Face's Phi-3 chooses by sequence length as here;
// llama.cpp chooses by its context size, so an adapter trained on short sequences
// matches llama.cpp run with a context up to the original one.
func (b *builder) ropeFactors() *ggml.Tensor {
	g, hp := b.m.globals, b.m.HP
	if f := g[ropeFreqs]; f != nil {
		return f
	}
	orig := hp.RopeOrigContext
	if orig == 0 {
		orig = hp.ContextLen
	}
	if f := g[ropeFactorsLong]; f != nil && b.T > orig {
		return f
	}
	return g[ropeFactorsShort]
}

// attention is causal grouped-query self-attention with RoPE on block l.
//
// The batch is folded into the head dimension ([head_dim, T, heads·B]) because ggml's
// backward pass of a broadcasting mul_mat (heads sharing a KV head) only handles 3-D
// operands; with heads varying fastest, query head h of sequence s meets KV head
// (h + heads·s)/group = h/group + kv_heads·s, which is exactly its own.
func (b *builder) attention(l int, x *ggml.Tensor, o attnOpts) *ggml.Tensor {
	c, hp := b.c, b.m.HP
	hd, B, T := hp.HeadDim, b.B, b.T
	rope := ggml.RopeOptions{Dims: hp.RopeDims, Mode: b.m.Arch.RopeMode, FreqBase: hp.RopeBase, FreqScale: hp.RopeScale,
		AttnFactor: hp.RopeAttnFactor}
	if o.swa && hp.RopeBaseSWA > 0 {
		rope.FreqBase = hp.RopeBaseSWA
	}
	ff := b.ropeFactors()

	q, k, v := b.qkv(l, x)
	// Rope over [hd, heads, B·T]: every token has a position of its own (packed
	// sequences restart them at each document).
	q = c.Reshape(c.Rope(c.Reshape(q, hd, hp.Heads, T*B), b.pos, ff, rope), hd, hp.Heads, T, B)
	k = c.Reshape(c.Rope(c.Reshape(k, hd, hp.HeadsKV, T*B), b.pos, ff, rope), hd, hp.HeadsKV, T, B)
	v = c.Reshape(v, hd, hp.HeadsKV, T, B)
	fused := ggml.AttentionOptions{Scale: float32(1 / math.Sqrt(float64(hd))), Softcap: hp.AttnSoftcap, Starts: b.starts}
	if o.qScale != 0 || o.preScaleQ {
		fused.PreScale, fused.Scale = fused.Scale, 1
		if o.qScale != 0 {
			fused.PreScale = o.qScale
		}
	}
	if o.swa && hp.SlidingWindow > 0 {
		fused.Window = hp.SlidingWindow
	}
	if b.fuse == fuseOps {
		return b.linear(l, "attn_output", c.CausalAttention(q, k, v, fused))
	}
	qr, kr, vr := q, k, v
	q = c.Reshape(c.Cont(c.Permute(q, 0, 2, 1, 3)), hd, T, hp.Heads*B)     // [hd, T, H·B]
	k = c.Reshape(c.Cont(c.Permute(k, 0, 2, 1, 3)), hd, T, hp.HeadsKV*B)   // [hd, T, KV·B]
	vt := c.Reshape(c.Cont(c.Permute(v, 1, 2, 0, 3)), T, hd, hp.HeadsKV*B) // [T, hd, KV·B]
	scale := float32(1 / math.Sqrt(float64(hd)))
	if o.qScale != 0 {
		scale, o.preScaleQ = o.qScale, true
	}
	if o.preScaleQ {
		// After the copy: ggml's backward of scale needs a contiguous gradient, and
		// the gradient arriving through a permute is not.
		q, scale = c.Scale(q, scale), 1
	}

	if b.m.kvType != ggml.TypeF32 {
		// llama.cpp keeps K and V in an f16 cache by default; mul_mat then also rounds
		// q and the attention weights to f16. Only the libllama parity test asks for it.
		k, vt = c.Cast(k, b.m.kvType), c.Cast(vt, b.m.kvType)
	}
	kq := c.MulMat(k, q) // [T_k, T_q, H·B]
	if sc := hp.AttnSoftcap; sc > 0 {
		// c·tanh(s/c) = 2c·σ(2s/c) - c, and softmax ignores the constant.
		kq = c.Scale(b.sigmoid(c.Scale(kq, 2/sc)), 2*sc)
	}
	kq = c.SoftMax(kq, b.attnMask(o.swa), scale, 0)
	out := c.MulMat(vt, kq)                                         // [hd, T_q, H·B]
	out = c.Permute(c.Reshape(out, hd, T, hp.Heads, B), 0, 2, 1, 3) // [hd, H, T, B]
	out = c.Reshape(c.Cont(out), hd*hp.Heads, T*B)
	if b.fuse == fuseSites {
		b.attnSites = append(b.attnSites, ggml.AttentionSite{Q: qr, K: kr, V: vr, Out: out, Opts: fused})
	}
	return b.linear(l, "attn_output", out)
}

// ffnSwiGLU is down(silu(gate(x)) · up(x)) on block l.
func (b *builder) ffnSwiGLU(l int, x *ggml.Tensor) *ggml.Tensor {
	g := b.linear(l, "ffn_gate", x)
	u := b.linear(l, "ffn_up", x)
	return b.linear(l, "ffn_down", b.c.SwiGLU(g, u))
}

// ffnSwiGLUFused is ffnSwiGLU with gate and up fused into one ffn_up of 2·FF rows, the
// gate half first (Phi-3). The halves are split by views rather than by ggml's
// one-operand swiglu, whose backward pass ggml lacks.
func (b *builder) ffnSwiGLUFused(l int, x *ggml.Tensor) *ggml.Tensor {
	c, ff := b.c, b.m.HP.FF
	y := b.linear(l, "ffn_up", x)
	g := c.Cont(c.View(y, []int{ff, y.Ne(1)}, []int{y.Nb(1)}, 0))
	u := c.Cont(c.View(y, []int{ff, y.Ne(1)}, []int{y.Nb(1)}, ff*y.Nb(0)))
	return b.linear(l, "ffn_down", c.SwiGLU(g, u))
}

// ffnGEGLU is down(gelu(gate(x)) · up(x)) on block l (Gemma).
func (b *builder) ffnGEGLU(l int, x *ggml.Tensor) *ggml.Tensor {
	g := b.linear(l, "ffn_gate", x)
	u := b.linear(l, "ffn_up", x)
	if b.m.geluOp {
		return b.linear(l, "ffn_down", b.c.Mul(b.c.GELU(g), u))
	}
	return b.linear(l, "ffn_down", b.c.Mul(b.gelu(g), u))
}

// ffnGELU is down(gelu(up(x))) on block l, biases included (Phi-2).
func (b *builder) ffnGELU(l int, x *ggml.Tensor) *ggml.Tensor {
	u := b.linear(l, "ffn_up", x)
	if b.m.geluOp {
		return b.linear(l, "ffn_down", b.c.GELU(u))
	}
	return b.linear(l, "ffn_down", b.gelu(u))
}

// embed looks the tokens up in the token embeddings: [Embd, B·T].
func (b *builder) embed() *ggml.Tensor {
	w := b.m.globals[tokEmbd]
	n, rows := w.Ne(0), w.Ne(1)
	k := w.Type().RowGroup(n)
	if k == 1 || rows%k != 0 || !w.IsContiguous() {
		return b.c.GetRows(w, b.tokens)
	}
	// A backend that reads this type only in whole super-blocks (CUDA, IQ4_NL) would
	// leave a plain lookup of narrower rows to the CPU. Read instead, for each token, the
	// group of k rows that holds its row (whole blocks), then pick that row out of the F32
	// result: k times the dequantizing, of B·T rows only.
	b.embK = k
	b.embGroup = b.c.NewTensor(ggml.TypeI32, b.B*b.T).SetName("token_groups").SetInput()
	b.embPick = b.c.NewTensor(ggml.TypeI32, b.B*b.T).SetName("token_picks").SetInput()
	groups := b.c.View(w, []int{n * k, rows / k}, []int{w.Nb(1) * k}, 0)
	x := b.c.Reshape(b.c.GetRows(groups, b.embGroup), n, k*b.B*b.T)
	return b.c.GetRows(x, b.embPick)
}

// hidden returns the final-normed hidden states [Embd, B·T] of the whole stack.
func (b *builder) hidden() *ggml.Tensor {
	x := b.embed()
	if b.m.Arch.EmbedScale {
		x = b.c.Scale(x, float32(math.Sqrt(float64(b.m.HP.Embd))))
	}
	for l := 0; l < b.m.HP.Layers; l++ {
		b.checkpoints = append(b.checkpoints, x)
		x = b.m.Arch.Layer(b, l, x)
	}
	b.checkpoints = append(b.checkpoints, x)
	return b.norm(-1, "output_norm", x)
}

// outputMatrix returns the output layer's matrix (the token embeddings when they are
// tied) and whether the logits are its product with the hidden states alone (no bias,
// no soft cap), as ggml.LinearCrossEntropy computes them.
func (b *builder) outputMatrix() (w *ggml.Tensor, plain bool) {
	w = b.m.globals[outputW]
	if w == nil {
		w = b.m.globals[tokEmbd]
	}
	return w, b.m.globals[outputB] == nil && b.m.HP.FinalSoftcap <= 0
}

// logits projects hidden states [Embd, n] to the vocabulary with the output matrix, or
// the token embeddings when they are tied.
func (b *builder) logits(h *ggml.Tensor) *ggml.Tensor {
	w, _ := b.outputMatrix()
	y := b.c.MulMat(w, h)
	if bias := b.m.globals[outputB]; bias != nil {
		y = b.c.Add(y, bias)
	}
	if sc := b.m.HP.FinalSoftcap; sc > 0 {
		// c·tanh(y/c) = c·(σ(2y/c) - σ(-2y/c)).
		y = b.c.Scale(b.tanhHalf(b.c.Scale(y, 2/sc)), sc)
	}
	return y
}

// qkvSpecs are the attention projections as llama.cpp's loader accepts them: one fused
// attn_qkv or separate attn_q, attn_k, attn_v, each with an optional bias; checkQKV
// makes sure a file has one of the two.
func qkvSpecs() []TensorSpec {
	return []TensorSpec{
		{Name: "attn_qkv.weight", Dims: []Dim{DimEmbd, DimQKV}, Optional: true, LoRA: "attn_qkv"},
		{Name: "attn_qkv.bias", Dims: []Dim{DimQKV}, Optional: true},
		{Name: "attn_q.weight", Dims: []Dim{DimEmbd, DimQ}, Optional: true, LoRA: "attn_q"},
		{Name: "attn_q.bias", Dims: []Dim{DimQ}, Optional: true},
		{Name: "attn_k.weight", Dims: []Dim{DimEmbd, DimKV}, Optional: true, LoRA: "attn_k"},
		{Name: "attn_k.bias", Dims: []Dim{DimKV}, Optional: true},
		{Name: "attn_v.weight", Dims: []Dim{DimEmbd, DimKV}, Optional: true, LoRA: "attn_v"},
		{Name: "attn_v.bias", Dims: []Dim{DimKV}, Optional: true},
	}
}

// fusedQKV sends the separate projections' target names to the fused weight.
var fusedQKV = map[string]string{"attn_q": "attn_qkv", "attn_k": "attn_qkv", "attn_v": "attn_qkv"}

// checkQKV requires every block to have attn_qkv or all of attn_q, attn_k and attn_v.
func checkQKV(m *Model) error {
	for l, blk := range m.blocks {
		if blk["attn_qkv.weight"] != nil {
			continue
		}
		for _, n := range []string{"attn_q.weight", "attn_k.weight", "attn_v.weight"} {
			if blk[n] == nil {
				return fmt.Errorf("block %d has neither attn_qkv.weight nor %s", l, n)
			}
		}
	}
	return nil
}

// loraUp returns s·B·h for an adapter's B [r, out] and h = A·x [r, n]. The product
// sums over the rank, and the CPU's tiled matrix kernels need sums a multiple of 16
// long: below that (rank 8, PEFT's default) ggml falls back to one dot product per output
// value, about 20× slower. So both are padded with zero rows to the next multiple of
// 16, which adds nothing to the product. The padding is itself a product, with the
// [r, r'] matrix whose leading square is the identity (times s for h, so the scale costs
// no pass over the [out, n] result): exact, cheap at these sizes, and differentiable,
// where ggml's pad op has no backward rule.
func (b *builder) loraUp(B, h *ggml.Tensor, s float32) *ggml.Tensor {
	const tile = 16
	r := B.Ne(0)
	if r%tile == 0 {
		return b.c.MulMat(B, b.c.Scale(h, s))
	}
	P, Ps := b.padding(r, (r+tile-1)/tile*tile, s)
	return b.c.MulMat(b.c.MulMat(P, B), b.c.MulMat(Ps, h))
}

// padding returns the input [r, rp] matrices (I 0) and (sI 0) that pad r rows to rp,
// made on first use.
func (b *builder) padding(r, rp int, s float32) (*ggml.Tensor, *ggml.Tensor) {
	if b.pad == nil {
		b.pad = b.c.NewTensor(ggml.TypeF32, r, rp).SetName(fmt.Sprintf("pad_%d_%d", r, rp)).SetInput()
		b.padScaled = b.c.NewTensor(ggml.TypeF32, r, rp).SetName(fmt.Sprintf("pad_%d_%d_scaled", r, rp)).SetInput()
		b.scale = s
	}
	return b.pad, b.padScaled
}
