package trainer

import (
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

	tokens *ggml.Tensor // I32 [B·T]
	pos    *ggml.Tensor // I32 [T], shared by every sequence
	mask   *ggml.Tensor // F32 [T, T] causal mask

	// dropout > 0 adds one input mask per adapted module, filled before each run.
	dropout  float32
	dropMask []*ggml.Tensor
}

func newBuilder(c *ggml.Context, m *Model, lora *LoRA, B, T int, dropout float32) *builder {
	b := &builder{c: c, m: m, lora: lora, B: B, T: T, dropout: dropout}
	b.tokens = c.NewTensor(ggml.TypeI32, B*T).SetName("tokens").SetInput()
	b.pos = c.NewTensor(ggml.TypeI32, T).SetName("positions").SetInput()
	b.mask = c.NewTensor(ggml.TypeF32, T, T).SetName("causal_mask").SetInput()
	return b
}

// setInputs fills the builder's inputs (after the scheduler allocated them).
func (b *builder) setInputs(tokens []int32) error {
	if err := b.tokens.SetI32(tokens); err != nil {
		return err
	}
	pos := make([]int32, b.T)
	for i := range pos {
		pos[i] = int32(i)
	}
	if err := b.pos.SetI32(pos); err != nil {
		return err
	}
	return b.mask.SetF32(causalMask(b.T))
}

// causalMask is 0 where query i may see key j (j ≤ i) and -inf elsewhere. Padding needs
// no mask of its own: batches are right-padded, so a padding key is only ever visible
// to padding queries, whose loss weight is zero; nothing a real token computes, nor
// any gradient, depends on padding.
func causalMask(T int) []float32 {
	m := make([]float32, T*T)
	for i := 0; i < T; i++ {
		for j := i + 1; j < T; j++ {
			m[i*T+j] = float32(math.Inf(-1))
		}
	}
	return m
}

func (b *builder) weight(l int, name string) *ggml.Tensor { return b.m.blocks[l][name] }

// norm applies the architecture's normalisation with block l's weights name.weight
// (and name.bias when present).
func (b *builder) norm(l int, name string, x *ggml.Tensor) *ggml.Tensor {
	var w, bias *ggml.Tensor
	if l < 0 {
		w = b.m.globals[name+".weight"]
		bias = b.m.globals[name+".bias"]
	} else {
		w, bias = b.weight(l, name+".weight"), b.weight(l, name+".bias")
	}
	if b.m.Arch.Norm == NormLayer {
		x = b.c.Norm(x, b.m.HP.NormEps)
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
	if p := b.lora.pair(blockName(l, full)); p != nil {
		in := x
		if b.dropout > 0 {
			dm := b.c.NewTensor(ggml.TypeF32, x.Ne(0), x.Ne(1)).SetInput()
			b.dropMask = append(b.dropMask, dm)
			in = b.c.Mul(x, dm)
		}
		y = b.c.Add(y, b.c.Scale(b.c.MulMat(p.B, b.c.MulMat(p.A, in)), b.lora.Scale()))
	}
	return y
}

// attention is causal grouped-query self-attention with RoPE on block l.
//
// The batch is folded into the head dimension ([head_dim, T, heads·B]) because ggml's
// backward pass of a broadcasting mul_mat (heads sharing a KV head) only handles 3-D
// operands; with heads varying fastest, query head h of sequence s meets KV head
// (h + heads·s)/group = h/group + kv_heads·s, which is exactly its own.
func (b *builder) attention(l int, x *ggml.Tensor) *ggml.Tensor {
	c, hp := b.c, b.m.HP
	hd, B, T := hp.HeadDim, b.B, b.T
	rope := ggml.RopeOptions{Dims: hp.RopeDims, Mode: b.m.Arch.RopeMode, FreqBase: hp.RopeBase, FreqScale: hp.RopeScale}

	q := c.Rope(c.Reshape(b.linear(l, "attn_q", x), hd, hp.Heads, T, B), b.pos, nil, rope)
	k := c.Rope(c.Reshape(b.linear(l, "attn_k", x), hd, hp.HeadsKV, T, B), b.pos, nil, rope)
	v := c.Reshape(b.linear(l, "attn_v", x), hd, hp.HeadsKV, T, B)

	q = c.Reshape(c.Cont(c.Permute(q, 0, 2, 1, 3)), hd, T, hp.Heads*B)     // [hd, T, H·B]
	k = c.Reshape(c.Cont(c.Permute(k, 0, 2, 1, 3)), hd, T, hp.HeadsKV*B)   // [hd, T, KV·B]
	vt := c.Reshape(c.Cont(c.Permute(v, 1, 2, 0, 3)), T, hd, hp.HeadsKV*B) // [T, hd, KV·B]

	if b.m.kvType != ggml.TypeF32 {
		// llama.cpp keeps K and V in an f16 cache by default; mul_mat then also rounds
		// q and the attention weights to f16. Only the libllama parity test asks for it.
		k, vt = c.Cast(k, b.m.kvType), c.Cast(vt, b.m.kvType)
	}
	kq := c.SoftMax(c.MulMat(k, q), b.mask, float32(1/math.Sqrt(float64(hd))), 0) // [T_k, T_q, H·B]
	o := c.MulMat(vt, kq)                                                         // [hd, T_q, H·B]
	o = c.Permute(c.Reshape(o, hd, T, hp.Heads, B), 0, 2, 1, 3)                   // [hd, H, T, B]
	o = c.Reshape(c.Cont(o), hd*hp.Heads, T*B)
	return b.linear(l, "attn_output", o)
}

// ffnSwiGLU is down(silu(gate(x)) · up(x)) on block l.
func (b *builder) ffnSwiGLU(l int, x *ggml.Tensor) *ggml.Tensor {
	g := b.linear(l, "ffn_gate", x)
	u := b.linear(l, "ffn_up", x)
	return b.linear(l, "ffn_down", b.c.SwiGLU(g, u))
}

// hidden returns the final-normed hidden states [Embd, B·T] of the whole stack.
func (b *builder) hidden() *ggml.Tensor {
	x := b.c.GetRows(b.m.globals[tokEmbd], b.tokens)
	for l := 0; l < b.m.HP.Layers; l++ {
		x = b.m.Arch.Layer(b, l, x)
	}
	return b.norm(-1, "output_norm", x)
}

// logits projects hidden states [Embd, n] to the vocabulary with the output matrix, or
// the token embeddings when they are tied.
func (b *builder) logits(h *ggml.Tensor) *ggml.Tensor {
	w := b.m.globals[outputW]
	if w == nil {
		w = b.m.globals[tokEmbd]
	}
	return b.c.MulMat(w, h)
}
