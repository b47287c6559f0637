package trainer

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/factory"
)

// TestCheckpointingSavesMemory measures the compute buffer of one training step of an
// 8-layer model on 256 tokens, with and without gradient checkpointing, with attention
// built from ggml's generic ops and fused. (Only the last tokens are targets, so the
// logits stay small.)
func TestCheckpointingSavesMemory(t *testing.T) {
	if gpuTests {
		t.Skip("measures the CPU's fused ops against the generic ones")
	}
	ac := archCase{name: "llama-deep", vocab: "llama-spm",
		spec: factory.Spec{Arch: "llama", Embd: 64, Layers: 8, Heads: 4, HeadsKV: 2, FF: 128, Context: 256}}
	path := writeArchModel(t, ac)
	ids := make([]int32, 257)
	mask := make([]bool, 257)
	for i := range ids {
		ids[i] = int32(100 + i)
		mask[i] = i > 250
	}
	buffer := func(generic, ck bool) int {
		// A fresh scheduler each time: its buffer only grows.
		m, err := loadTestModel(path, ModelOptions{Threads: 1, GenericOps: generic})
		require.NoError(t, err)
		defer m.Close()
		l, err := NewLoRA(m, LoRAConfig{Rank: 8, Alpha: 16, Targets: []string{"all"}, Seed: 1})
		require.NoError(t, err)
		defer l.Close()
		b, err := NewBatch([]Example{{IDs: ids, Mask: mask}}, 256, 0)
		require.NoError(t, err)
		_, _, n := lossAndGradsWith(t, m, l, b, ck)
		return n
	}
	generic := [2]int{buffer(true, true), buffer(true, false)}
	fused := [2]int{buffer(false, true), buffer(false, false)}
	t.Logf("compute buffer, generic attention: %d KiB with gradient checkpointing, %d KiB without", generic[0]>>10, generic[1]>>10)
	t.Logf("compute buffer, fused attention: %d KiB with gradient checkpointing, %d KiB without", fused[0]>>10, fused[1]>>10)
	// Generic attention keeps every layer's [256, 256, 4] scores and probabilities
	// (2 MiB); with checkpointing, one layer's backward (scores, probabilities, their
	// gradients and transposes) is the peak: 1,112 against 366 MiB on the 30-layer 143m
	// shape.
	assert.Less(t, generic[0], generic[1]*2/3)
	// Fused attention stores no scores, so there is less to save, but each layer's
	// other activations still go.
	assert.Less(t, fused[0], fused[1]*4/5)
	assert.Less(t, fused[1], generic[1]*4/5, "fused ops without checkpointing use less memory than generic ones")
}
