package trainer

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/ggml"
)

func loadStoriesTrainable(t *testing.T) *Model {
	t.Helper()
	requireStories(t)
	m, err := loadTestModel(storiesPath, ModelOptions{Threads: 1, Trainable: true})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// TestFullGradientsMatchFiniteDifferences checks ∇loss for weights of every kind (an
// embedding row, a norm, attention and MLP matrices, the output) against central
// differences of the forward loss.
func TestFullGradientsMatchFiniteDifferences(t *testing.T) {
	m := loadStoriesTrainable(t)
	b := testBatch(t)
	params := m.params
	s, opt := testStep(t, m, nil, params, b, 0, checkpointNone)
	_, err := s.run(b, 1, nil, nil)
	require.NoError(t, err)

	// The same step with gradient checkpointing gives every weight the same gradient.
	ck, ckOpt := testStep(t, m, nil, params, b, 0, checkpointFull)
	_, err = ck.run(b, 1, nil, nil)
	require.NoError(t, err)
	for i, p := range params {
		want, err := opt.accs[i].F32()
		require.NoError(t, err)
		got, err := ckOpt.accs[i].F32()
		require.NoError(t, err)
		require.Equalf(t, want, got, "%s: gradient with checkpointing", p.Name())
	}

	loss := func() float64 {
		logits, err := m.Logits(b.Tokens, b.B, b.T, nil)
		require.NoError(t, err)
		return refLoss(logits, b, m.HP.Vocab)
	}
	worst := 0.0
	checked := 0
	for i, p := range params {
		switch p.Name() {
		case "token_embd.weight", "output_norm.weight", "output.weight", "blk.0.attn_q.weight",
			"blk.2.attn_norm.weight", "blk.4.ffn_down.weight", "blk.1.attn_v.weight":
		default:
			continue
		}
		grad, err := opt.accs[i].F32()
		require.NoError(t, err)
		w, err := p.F32()
		require.NoError(t, err)
		// The element with the largest gradient: a difference well above float32 noise.
		j := 0
		for k := range grad {
			if abs(float64(grad[k])) > abs(float64(grad[j])) {
				j = k
			}
		}
		const h = 1e-2
		orig := w[j]
		w[j] = orig + h
		require.NoError(t, p.SetF32(w))
		up := loss()
		w[j] = orig - h
		require.NoError(t, p.SetF32(w))
		down := loss()
		w[j] = orig
		require.NoError(t, p.SetF32(w))
		fd := (up - down) / (2 * h)
		rel := abs(fd-float64(grad[j])) / max(abs(fd), 1e-6)
		t.Logf("%s[%d]: autograd %.6g, central difference %.6g (relative error %.2e)", p.Name(), j, grad[j], fd, rel)
		assert.Less(t, rel, 1e-2, p.Name())
		worst = max(worst, rel)
		checked++
	}
	require.Equal(t, 7, checked)
	t.Logf("worst relative error %.2e", worst)
}

// TestFullFineTune trains every weight, then checks the written model in libllama.
func TestFullFineTune(t *testing.T) {
	m := loadStoriesTrainable(t)
	train, val := ckptData(t)
	dir := t.TempDir()
	res, err := Train(context.Background(), m, Config{Method: MethodFull, Schedule: Schedule{LR: 2e-3, Warmup: 2},
		Steps: 12, BatchSize: 4, SeqLen: 32, EvalEvery: 6, Seed: 3, RunDir: dir, SaveEvery: 6}, train, val)
	require.NoError(t, err)
	assert.Nil(t, res.LoRA)
	require.Len(t, res.Evals, 3)
	first, last := res.Evals[0].Loss, res.Evals[2].Loss
	t.Logf("held-out loss %.4f → %.4f", first, last)
	assert.Less(t, last, 0.97*first, "held-out loss drops by more than 3%")

	out := filepath.Join(dir, "model.gguf")
	require.NoError(t, m.WriteModel(out))
	assert.FileExists(t, filepath.Join(dir, "checkpoint-12", "model.gguf"))
	ref := newLlamaRef(t, out)
	tokens := ref.tokenize(t, "Once upon a time, there was a little dog.")
	want := ref.logits(t, tokens)
	m.kvType = ggml.TypeF16
	got, err := m.Logits(tokens, 1, len(tokens), nil)
	require.NoError(t, err)
	base := newLlamaRef(t, storiesPath).logits(t, tokens)
	V := m.HP.Vocab
	worst, moved := 0.0, 0.0
	for i := range tokens {
		d, rng := maxAbsDiff(got[i*V:(i+1)*V], want[i])
		worst = max(worst, d/rng)
		mv, _ := maxAbsDiff(want[i], base[i])
		moved = max(moved, mv)
	}
	assert.LessOrEqual(t, worst, 1e-4, "trained model in libllama vs our forward")
	assert.Greater(t, moved, 0.05, "training changed the model's logits")
	t.Logf("libllama on the written model vs ours: %.2e of the range; logits moved up to %.3f from the base", worst, moved)
}

// TestFullResumeIsExact interrupts a full fine-tune and resumes it from its checkpoint.
func TestFullResumeIsExact(t *testing.T) {
	train, val := ckptData(t)
	cfg := func(dir string) Config {
		return Config{Method: MethodFull, Optimizer: OptimizerConfig{ClipNorm: 1, WeightDecay: 0.01},
			Schedule: Schedule{LR: 1e-3, Warmup: 2}, Steps: 6, BatchSize: 3, SeqLen: 32, EvalEvery: 3,
			EvalBatches: 1, Seed: 5, RunDir: dir, SaveEvery: 3}
	}
	run := func(c Config, ctx context.Context) (map[int]float64, error) {
		m := loadStoriesTrainable(t)
		losses := map[int]float64{}
		onStep := c.OnStep
		c.OnStep = func(s StepInfo) {
			losses[s.Step] = s.Loss
			if onStep != nil {
				onStep(s)
			}
		}
		_, err := Train(ctx, m, c, train, val)
		return losses, err
	}
	want, err := run(cfg(t.TempDir()), context.Background())
	require.NoError(t, err)

	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	c := cfg(dir)
	c.OnStep = func(s StepInfo) {
		if s.Step == 3 {
			cancel()
		}
	}
	_, err = run(c, ctx)
	require.ErrorIs(t, err, context.Canceled)
	c = cfg(dir)
	c.Resume = true
	got, err := run(c, context.Background())
	require.NoError(t, err)
	require.Len(t, got, 3)
	for step := 4; step <= 6; step++ {
		assert.InDelta(t, want[step], got[step], 1e-6, "step %d", step)
	}
}

func TestFullNeedsTrainableModel(t *testing.T) {
	m := loadStories(t)
	train, _ := ckptData(t)
	_, err := Train(context.Background(), m, Config{Method: MethodFull, Steps: 1}, train, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Trainable")
	_, err = Train(context.Background(), m, Config{Method: "qlora", Steps: 1}, train, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `method "qlora"`)
}

// TestFullVaryingShapes trains on examples of many lengths, so each step builds a graph
// of a new shape between the optimizer's own graphs (which once crashed: see
// ggml.TestKeptGraphAfterBufferGrows).
func TestFullVaryingShapes(t *testing.T) {
	m := loadStoriesTrainable(t)
	r := rand.New(rand.NewPCG(1, 2))
	var exs Examples
	for i := 0; i < 40; i++ {
		n := 8 + r.IntN(120)
		ex := Example{IDs: make([]int32, n), Mask: make([]bool, n)}
		for j := range ex.IDs {
			ex.IDs[j], ex.Mask[j] = int32(3+r.IntN(500)), true
		}
		exs = append(exs, ex)
	}
	res, err := Train(context.Background(), m, Config{Method: MethodFull, Steps: 20, BatchSize: 4, SeqLen: 128,
		EvalEvery: -1, Schedule: Schedule{LR: 1e-3}}, exs, nil)
	require.NoError(t, err)
	assert.Equal(t, 20, res.Steps)
}
