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

// sigmoid is σ(y) = exp(-softplus(-y)), from ops ggml differentiates (it has no
// backward rule for its sigmoid or tanh), and stable at both ends: softplus(-y) is -y
// for very negative y and tends to 0 for large y.
func (b *builder) sigmoid(y *ggml.Tensor) *ggml.Tensor {
	c := b.c
	return c.Exp(c.Scale(c.Softplus(c.Scale(y, -1)), -1))
}

// tanhHalf is tanh(y/2) = σ(y) - σ(-y), which needs no constant term.
func (b *builder) tanhHalf(y *ggml.Tensor) *ggml.Tensor {
	c := b.c
	return c.Sub(b.sigmoid(y), c.Exp(c.Scale(c.Softplus(y), -1)))
}
