package trainer

import (
	"math"

	"github.com/ecotune/ecotune/ggml"
)

// ggml's backward pass has no rule for some ops our architectures use (norm, gelu,
// sigmoid, tanh); it aborts the process when a gradient has to cross one. These
// builders compute the same functions from ops it can differentiate, so a LoRA below
// such an op still gets its gradient. Forward and training graphs use them alike, so
// the loss a step reports is the loss of the model Logits runs.

// layerNorm is (x - mean(x)) / √(var(x) + eps) over each row: ggml's norm, rebuilt as
// the RMS norm of the centred row, which is the same quantity.
func (b *builder) layerNorm(x *ggml.Tensor, eps float32) *ggml.Tensor {
	c := b.c
	mean := c.Scale(c.SumRows(x), 1/float32(x.Ne(0)))
	return c.RMSNorm(c.Sub(x, c.Repeat(mean, x)), eps)
}

// gelu is GELU in its tanh form, ½x(1 + tanh(√(2/π)(x + 0.044715x³))), written as
// x·σ(2·√(2/π)(x + 0.044715x³)) since ½(1 + tanh z) = σ(2z). ggml's own gelu (which
// llama.cpp's CPU backend evaluates through an f16 table) has no backward rule.
func (b *builder) gelu(x *ggml.Tensor) *ggml.Tensor {
	c := b.c
	z := c.Add(x, c.Scale(c.Mul(c.Sqr(x), x), 0.044715))
	return c.Mul(x, b.sigmoid(c.Scale(z, float32(2*math.Sqrt(2/math.Pi)))))
}

// sigmoid is σ(y) for a contiguous y: the first entry of the softmax of the pair
// (y, 0), since ggml differentiates softmax but not sigmoid or tanh. Ops on rows of
// two cost ggml's CPU kernels a loop per element: forward and backward take about 15×
// a native elementwise op (measured against silu). ggml's div and exp, which it can
// differentiate, would make gelu and tanh a few plain elementwise ops once the ggml
// package exposes them.
func (b *builder) sigmoid(y *ggml.Tensor) *ggml.Tensor {
	c := b.c
	n := y.Elements()
	pair := c.Mul(c.Repeat(c.Reshape(y, 1, n), c.NewTensor(ggml.TypeF32, 2, n)), b.pairSelector())
	s := c.SoftMax(pair, nil, 1, 0)
	return c.Reshape(c.Cont(c.View(s, []int{1, n}, []int{s.Nb(1)}, 0)), y.Shape()...)
}

// pairSelector is the input constant (1, 0) that zeroes the second of each pair.
func (b *builder) pairSelector() *ggml.Tensor {
	if b.firstOfPair == nil {
		b.firstOfPair = b.c.NewTensor(ggml.TypeF32, 2, 1).SetName("first_of_pair").SetInput()
	}
	return b.firstOfPair
}
