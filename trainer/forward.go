package trainer

import (
	"fmt"

	"github.com/ecotune/ecotune/ggml"
)

// newComputeContext makes a context for one graph of m (and its backward pass).
func (m *Model) newComputeContext() (*ggml.Context, error) {
	// A training step's context holds two graphs: the one autograd extends and the
	// reordered one that runs (stepGraph); the extra tensors' room covers the second.
	c, err := ggml.NewContext(5*m.graphNodes, m.graphNodes)
	if err != nil {
		return nil, fmt.Errorf("trainer: compute context: %w", err)
	}
	return c, nil
}

func (m *Model) checkTokens(tokens []int32, B, T int) error {
	if B < 1 || T < 1 || len(tokens) != B*T {
		return fmt.Errorf("trainer: %d tokens do not make %d sequences of %d", len(tokens), B, T)
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= m.HP.Vocab {
			return fmt.Errorf("trainer: token %d at %d is outside the vocabulary of %d", t, i, m.HP.Vocab)
		}
	}
	return nil
}

// Logits runs the model, adapted by lora unless it is nil, on B sequences of T tokens
// (tokens sequence-major, len B·T, each sequence starting at position 0) and returns
// the logits of every position: B·T rows of Vocab values.
func (m *Model) Logits(tokens []int32, B, T int, lora *LoRA) ([]float32, error) {
	return m.logits(tokens, nil, B, T, lora)
}

// logits is Logits, of packed sequences when starts is not nil (see Batch.Starts).
func (m *Model) logits(tokens, starts []int32, B, T int, lora *LoRA) ([]float32, error) {
	if err := m.checkTokens(tokens, B, T); err != nil {
		return nil, err
	}
	c, err := m.newComputeContext()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var b *builder
	var out *ggml.Tensor
	var g *ggml.Graph
	err = ggml.Build(func() {
		b = newBuilder(c, m, lora, B, T, starts != nil, 0)
		if m.fusedOps() {
			b.fuse = fuseOps
		}
		out = b.logits(b.hidden()).SetOutput()
		g = c.NewGraph(m.graphNodes, false)
		g.Expand(out)
	})
	if err != nil {
		return nil, fmt.Errorf("trainer: building the forward graph: %w", err)
	}
	if err := m.sched.Alloc(g); err != nil {
		return nil, fmt.Errorf("trainer: forward: %w", err)
	}
	if err := b.setInputs(tokens, starts); err != nil {
		return nil, fmt.Errorf("trainer: forward: %w", err)
	}
	if err := m.sched.Run(g); err != nil {
		return nil, fmt.Errorf("trainer: forward: %w", err)
	}
	return out.F32()
}
