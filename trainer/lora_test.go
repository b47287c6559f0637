package trainer

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testBatch is two sequences of stories260K tokens with a masked prompt and padding.
func testBatch(t *testing.T) *Batch {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	seq := func(n int) []int32 {
		ids := []int32{1}
		for len(ids) < n {
			ids = append(ids, int32(3+r.IntN(509)))
		}
		return ids
	}
	a := Example{IDs: seq(14), Mask: make([]bool, 14)}
	for i := 5; i < 14; i++ {
		a.Mask[i] = true // the first 5 tokens are the prompt
	}
	b := Example{IDs: seq(9), Mask: make([]bool, 9)}
	for i := 2; i < 9; i++ {
		b.Mask[i] = true
	}
	batch, err := NewBatch([]Example{a, b}, 13, 0)
	require.NoError(t, err)
	require.Equal(t, 9+7, batch.Targets())
	return batch
}

// refLoss is the float64 mean cross-entropy over the batch's targets, from logits.
func refLoss(logits []float32, b *Batch, V int) float64 {
	sum, n := 0.0, 0
	for i, l := range b.Labels {
		if l < 0 {
			continue
		}
		row := logits[i*V : (i+1)*V]
		mx := math.Inf(-1)
		for _, z := range row {
			mx = math.Max(mx, float64(z))
		}
		se := 0.0
		for _, z := range row {
			se += math.Exp(float64(z) - mx)
		}
		sum += mx + math.Log(se) - float64(row[l])
		n++
	}
	return sum / float64(n)
}

// lossAndGrads runs one training micro-batch and returns its loss and ∇loss per
// adapter tensor name.
func lossAndGrads(t *testing.T, m *Model, l *LoRA, b *Batch) (float64, map[string][]float32) {
	loss, grads, _ := lossAndGradsWith(t, m, l, b, checkpointNone)
	return loss, grads
}

// lossAndGradsWith is lossAndGrads with or without gradient checkpointing; it also
// returns the size of the compute buffer the step needed.
func lossAndGradsWith(t *testing.T, m *Model, l *LoRA, b *Batch, ck checkpointing) (float64, map[string][]float32, int) {
	t.Helper()
	opt, err := newAdamW(m, l.params(), OptimizerConfig{})
	require.NoError(t, err)
	defer opt.Close()
	s, err := newStepGraph(m, l, l.params(), opt.accs, b.B, b.T, b.Targets(), b.Starts != nil, 0, ck)
	require.NoError(t, err)
	defer s.Close()
	loss, err := s.run(b, 1, nil, nil)
	require.NoError(t, err)
	grads := map[string][]float32{}
	for i, p := range l.params() {
		grads[p.Name()], err = opt.accs[i].F32()
		require.NoError(t, err)
	}
	return loss, grads, m.sched.BufferSize()
}

func TestLoRAShapesAndTargets(t *testing.T) {
	m := loadStories(t)
	l, err := NewLoRA(m, LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "ffn_down"}})
	require.NoError(t, err)
	defer l.Close()
	assert.Equal(t, []string{"attn_q", "ffn_down"}, l.Config.Targets)
	assert.Equal(t, float32(2), l.Scale())
	assert.Equal(t, 5*(64*4+4*64+172*4+4*64), l.Params())
	assert.Equal(t, []int{64, 4}, l.tensor("blk.0.attn_q.weight.lora_a").Shape())
	assert.Equal(t, []int{4, 64}, l.tensor("blk.0.attn_q.weight.lora_b").Shape())
	assert.Equal(t, []int{172, 4}, l.tensor("blk.3.ffn_down.weight.lora_a").Shape())
	b, err := l.Get("blk.3.ffn_down.weight.lora_b")
	require.NoError(t, err)
	assert.Equal(t, make([]float32, 4*64), b, "B starts at zero")
	a, err := l.Get("blk.3.ffn_down.weight.lora_a")
	require.NoError(t, err)
	bound := float32(1 / math.Sqrt(172))
	for _, v := range a {
		require.LessOrEqual(t, float32(math.Abs(float64(v))), bound)
	}
	rs, err := NewLoRA(m, LoRAConfig{Rank: 4, Alpha: 8, RSLoRA: true, Targets: []string{"all"}})
	require.NoError(t, err)
	defer rs.Close()
	assert.Equal(t, float32(4), rs.Scale())
	assert.Len(t, rs.Config.Targets, 7)
	_, err = NewLoRA(m, LoRAConfig{Targets: []string{"qkv_proj"}})
	assert.ErrorContains(t, err, "unknown LoRA target")

	// A fresh adapter (B = 0) leaves the model's logits unchanged.
	tokens := []int32{1, 400, 20, 33, 9}
	base, err := m.Logits(tokens, 1, 5, nil)
	require.NoError(t, err)
	adapted, err := m.Logits(tokens, 1, 5, l)
	require.NoError(t, err)
	assert.Equal(t, base, adapted)
}

// randomizeB makes every B nonzero so that A gets gradients too.
func randomizeB(t *testing.T, l *LoRA, seed uint64, scale float64) {
	r := rand.New(rand.NewPCG(seed, 3))
	for _, p := range l.pairs {
		v := make([]float32, p.B.Elements())
		for i := range v {
			v[i] = float32(r.NormFloat64() * scale)
		}
		require.NoError(t, p.B.SetF32(v))
	}
}

func TestMaskedLossMatchesReference(t *testing.T) {
	m := loadStories(t)
	l, err := NewLoRA(m, LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"all"}, Seed: 5})
	require.NoError(t, err)
	defer l.Close()
	randomizeB(t, l, 6, 0.05)
	b := testBatch(t)
	loss, _ := lossAndGrads(t, m, l, b)
	logits, err := m.Logits(b.Tokens, b.B, b.T, l)
	require.NoError(t, err)
	want := refLoss(logits, b, m.HP.Vocab)
	t.Logf("masked loss %.6f, float64 reference %.6f", loss, want)
	assert.InDelta(t, want, loss, 1e-5*want)
	// Changing a masked token's label (prompt, padding) leaves the loss alone.
	b2 := *b
	b2.Tokens = append([]int32(nil), b.Tokens...)
	b2.Tokens[2*b.T-1] = 77 // padding of the second sequence
	loss2, _ := lossAndGrads(t, m, l, &b2)
	assert.InDelta(t, loss, loss2, 1e-6)
}

// TestLoRAGradientsMatchFiniteDifferences checks ∇A and ∇B of the masked loss against
// central differences of a float64 loss computed from the forward logits.
func TestLoRAGradientsMatchFiniteDifferences(t *testing.T) {
	m := loadStories(t)
	l, err := NewLoRA(m, LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"all"}, Seed: 7})
	require.NoError(t, err)
	defer l.Close()
	randomizeB(t, l, 8, 0.05)
	b := testBatch(t)
	_, grads := lossAndGrads(t, m, l, b)
	worst, _ := checkGradsByFiniteDifferences(t, m, l, b, grads, []string{"blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b",
		"blk.1.attn_k.weight.lora_a", "blk.2.attn_v.weight.lora_b", "blk.3.attn_output.weight.lora_a", "blk.4.ffn_gate.weight.lora_b",
		"blk.2.ffn_up.weight.lora_a", "blk.4.ffn_down.weight.lora_b", "blk.1.ffn_down.weight.lora_a"}, 3)
	t.Logf("worst relative error of LoRA gradients vs central differences: %.2e", worst)
}

// checkGradsByFiniteDifferences compares grads of the named adapter tensors, at their k
// largest coordinates (where float32 noise matters least), with central differences of
// the float64 loss of m's logits with l on b. It returns the worst relative error and
// the number of coordinates checked.
func checkGradsByFiniteDifferences(t *testing.T, m *Model, l *LoRA, b *Batch, grads map[string][]float32, names []string, k int) (worst float64, checked int) {
	t.Helper()
	lossAt := func() float64 {
		logits, err := m.Logits(b.Tokens, b.B, b.T, l)
		require.NoError(t, err)
		return refLoss(logits, b, m.HP.Vocab)
	}
	const eps = 1e-2
	for _, name := range names {
		g := grads[name]
		require.NotEmpty(t, g, name)
		orig, err := l.Get(name)
		require.NoError(t, err)
		idx := make([]int, len(g))
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(i, j int) bool { return math.Abs(float64(g[idx[i]])) > math.Abs(float64(g[idx[j]])) })
		for _, i := range idx[:min(k, len(idx))] {
			v := append([]float32(nil), orig...)
			v[i] = orig[i] + eps
			require.NoError(t, l.Set(name, v))
			up := lossAt()
			v[i] = orig[i] - eps
			require.NoError(t, l.Set(name, v))
			down := lossAt()
			require.NoError(t, l.Set(name, orig))
			fd := (up - down) / (2 * eps)
			rel := math.Abs(fd-float64(g[i])) / math.Max(math.Abs(fd), 1e-12)
			worst = math.Max(worst, rel)
			checked++
			assert.LessOrEqualf(t, rel, 1e-2, "%s[%d]: analytic %g, finite difference %g", name, i, g[i], fd)
		}
	}
	return worst, checked
}

// TestStepRejectsOutOfVocabulary checks that a batch holding a token or a label outside
// the vocabulary (data tokenized for another model) is an error, not a ggml assert.
func TestStepRejectsOutOfVocabulary(t *testing.T) {
	m := loadStories(t)
	l, err := NewLoRA(m, LoRAConfig{Rank: 4, Alpha: 8, Seed: 1})
	require.NoError(t, err)
	defer l.Close()
	b := testBatch(t)
	s, _ := testStep(t, m, l, l.params(), b, 0, checkpointNone)
	bad := *b
	bad.Tokens = append([]int32(nil), b.Tokens...)
	bad.Tokens[3] = int32(m.HP.Vocab)
	_, err = s.run(&bad, 1, nil, nil)
	assert.ErrorContains(t, err, "outside the vocabulary of 512")
	bad = *b
	bad.Labels = append([]int32(nil), b.Labels...)
	for i, lab := range bad.Labels {
		if lab >= 0 {
			bad.Labels[i] = int32(m.HP.Vocab + 7)
			break
		}
	}
	_, err = s.run(&bad, 1, nil, nil)
	assert.ErrorContains(t, err, "outside the vocabulary of 512")
	loss, err := s.run(b, 1, nil, nil)
	require.NoError(t, err, "the step still runs on good data")
	assert.False(t, math.IsNaN(loss))
}
