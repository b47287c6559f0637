package trainer

import (
	"errors"
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
	buffer := func(generic bool, ck checkpointing) int {
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
	generic := [2]int{buffer(true, checkpointFull), buffer(true, checkpointNone)}
	fused := [2]int{buffer(false, checkpointFull), buffer(false, checkpointNone)}
	keepFFN := buffer(false, checkpointKeepFFN)
	t.Logf("compute buffer, fused attention, checkpointing that keeps the feed-forward products: %d KiB", keepFFN>>10)
	// Each layer's gate and up products (2 × 128 × 256 F32: 256 KiB) stay until its
	// backward pass, the last layer's perhaps where its recomputation would have been:
	// 7 to 8 layers' worth more than plain checkpointing, the rest of its saving kept.
	perLayer := 2 * 128 * 256 * 4
	assert.GreaterOrEqual(t, keepFFN-fused[0], 7*perLayer)
	assert.LessOrEqual(t, keepFFN-fused[0], 8*perLayer)
	assert.Less(t, keepFFN, fused[1])
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

// TestOutputLayerMemory measures the compute buffer of a training step and of an
// evaluation of 256 targets on two small models (2 layers of width 64, tied embeddings)
// that differ only in their vocabulary: llama.cpp's Llama 2 one (32,000 tokens) and Llama
// 3's (128,256), where the output layer outweighs the blocks many times, as on a 3B
// model. Computed whole, a step held the logits [V, 256] and their gradient (125 MiB each
// at 128,256 tokens) and a transposed copy of the output matrix (31 MiB); in vocabulary
// chunks (ggml.LinearCrossEntropy) it holds one chunk's logits and probabilities (32 MiB
// at most together, by construction: ggml.LinearCrossEntropyRows; here 16,064 rows of 256
// targets) and its transposed rows (16,064 × 64 F32: 4 MiB), beside what the rest of a
// step of this width holds (under 8 MiB), so the buffer does not grow with the vocabulary.
func TestOutputLayerMemory(t *testing.T) {
	if gpuTests {
		t.Skip("measures the CPU's chunked output layer")
	}
	const T = 256
	ids := make([]int32, T+1)
	mask := make([]bool, T+1)
	for i := range ids {
		ids[i], mask[i] = int32(100+37*i), true
	}
	buffers := func(vocab string) (step, eval int, vocabSize int) {
		ac := archCase{name: "llama-" + vocab, vocab: vocab,
			spec: factory.Spec{Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 128, Context: T, TiedEmbeddings: true}}
		path := writeArchModel(t, ac)
		b, err := NewBatch([]Example{{IDs: ids, Mask: mask}}, T, 0)
		require.NoError(t, err)
		require.Equal(t, T, b.Targets())
		// A fresh scheduler each time: its buffer only grows.
		for _, train := range []bool{false, true} {
			m, err := loadTestModel(path, ModelOptions{Threads: 1})
			require.NoError(t, err)
			l, err := NewLoRA(m, LoRAConfig{Rank: 8, Alpha: 16, Targets: []string{"all"}, Seed: 1})
			require.NoError(t, err)
			if train {
				_, _, step = lossAndGradsWith(t, m, l, b, checkpointFull)
			} else {
				s, err := newStepGraph(m, l, nil, nil, b.B, b.T, b.Targets(), false, 0, checkpointNone)
				require.NoError(t, err)
				_, err = s.run(b, 1, nil, nil)
				require.NoError(t, err)
				eval = m.sched.BufferSize()
				require.NoError(t, s.Close())
			}
			vocabSize = m.HP.Vocab
			require.NoError(t, errors.Join(l.Close(), m.Close()))
		}
		return step, eval, vocabSize
	}
	step32, eval32, _ := buffers("llama-spm")
	step128, eval128, V := buffers("llama-bpe")
	require.Equal(t, 128256, V)
	logits := V * T * 4
	t.Logf("compute buffer of a step: %d KiB at 32,000 tokens, %d KiB at %d; of an evaluation: %d and %d KiB; the logits alone would take %d KiB",
		step32>>10, step128>>10, V, eval32>>10, eval128>>10, logits>>10)
	assert.Less(t, step128, 44<<20, "a step holds one chunk's logits, probabilities and transposed rows, and the rest")
	assert.Less(t, eval128, 44<<20, "an evaluation holds one chunk's logits and the rest")
	// The chunks of both vocabularies are about the same size (16,000 and 16,064 rows).
	assert.LessOrEqual(t, step128, step32+1<<20, "a step's buffer does not grow with the vocabulary")
	assert.LessOrEqual(t, eval128, eval32+1<<20, "an evaluation's buffer does not grow with the vocabulary")
}
