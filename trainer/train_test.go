package trainer

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
)

// storiesTokens tokenizes testdata/stories.txt with stories260K's own tokenizer.
func storiesTokens(t *testing.T) []int32 {
	t.Helper()
	requireStories(t)
	text, err := os.ReadFile(filepath.Join("testdata", "stories.txt"))
	require.NoError(t, err)
	vm, err := bindings.LoadModel(storiesPath, bindings.ModelOptions{VocabOnly: true})
	require.NoError(t, err)
	defer vm.Close()
	ids, err := vm.Tokenize(string(text), true, false)
	require.NoError(t, err)
	return ids
}

func TestScheduleShapes(t *testing.T) {
	s := Schedule{Kind: ScheduleCosine, LR: 1, MinLR: 0.1, Warmup: 10, Steps: 110}
	require.NoError(t, s.Validate())
	assert.InDelta(t, 0.1, s.At(1), 1e-12)
	assert.InDelta(t, 1, s.At(10), 1e-12)
	assert.InDelta(t, 0.55, s.At(60), 1e-12)
	assert.InDelta(t, 0.1, s.At(110), 1e-12)
	s.Kind = ScheduleLinear
	assert.InDelta(t, 0.55, s.At(60), 1e-12)
	s.Kind = ScheduleConstant
	assert.InDelta(t, 1, s.At(100), 1e-12)
	assert.Error(t, Schedule{Kind: "exp", LR: 1, Steps: 1}.Validate())
	assert.Error(t, Schedule{LR: 1, Steps: 5, Warmup: 6}.Validate())
}

func TestTrainLowersHeldOutLoss(t *testing.T) {
	m := loadStories(t)
	ids := storiesTokens(t)
	trainSet, valSet := Split(Windows(ids, 64, 64), 0.2, 1)
	require.GreaterOrEqual(t, valSet.Len(), 4)
	metrics := filepath.Join(t.TempDir(), "metrics.jsonl")
	cfg := Config{
		LoRA:        LoRAConfig{Rank: 8, Alpha: 16, Targets: []string{"all"}, Seed: 1},
		Optimizer:   OptimizerConfig{ClipNorm: 1},
		Schedule:    Schedule{LR: 3e-3, Warmup: 5, MinLR: 3e-4},
		Steps:       60,
		BatchSize:   4,
		GradAccum:   2,
		SeqLen:      64,
		EvalEvery:   20,
		Seed:        2,
		MetricsPath: metrics,
	}
	var steps int
	cfg.OnStep = func(s StepInfo) { steps++ }
	start := time.Now()
	res, err := Train(context.Background(), m, cfg, trainSet, valSet)
	require.NoError(t, err)
	defer res.LoRA.Close()
	elapsed := time.Since(start)
	require.Len(t, res.Evals, 4) // before, after 20, 40, 60
	first, last := res.Evals[0].Loss, res.Evals[len(res.Evals)-1].Loss
	drop := (first - last) / first
	t.Logf("held-out loss %.4f → %.4f (%.1f%% drop) in %d steps, %.1fs, %.0f tokens/s", first, last, 100*drop, res.Steps, elapsed.Seconds(), res.TokensPerSec)
	assert.GreaterOrEqual(t, drop, 0.10, "held-out loss must drop by at least 10%%")
	assert.Less(t, elapsed, 30*time.Second)
	assert.Equal(t, 60, steps)

	f, err := os.Open(metrics)
	require.NoError(t, err)
	defer f.Close()
	kinds := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
		kinds[r.Kind]++
	}
	assert.Equal(t, map[string]int{"train": 60, "eval": 4}, kinds)
}
