package trainer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
)

// ckptData is stories260K text cut into short windows: about fifty training examples,
// so a run of 12 steps of 6 examples crosses an epoch boundary (a reshuffle).
func ckptData(t *testing.T) (train, val Dataset) {
	t.Helper()
	train, val = Split(Windows(storiesTokens(t), 32, 32), 0.15, 1)
	require.Greater(t, train.Len(), 30)
	require.Less(t, train.Len(), 12*6, "the run must cross an epoch")
	return train, val
}

// ckptConfig trains briefly with everything that carries state across steps switched
// on: dropout (masks from the RNG), weight decay, clipping, warmup and a cosine decay.
func ckptConfig(runDir string) Config {
	return Config{
		LoRA:        LoRAConfig{Rank: 4, Alpha: 8, Dropout: 0.1, Targets: []string{"all"}, Seed: 1},
		Optimizer:   OptimizerConfig{ClipNorm: 1, WeightDecay: 0.01},
		Schedule:    Schedule{LR: 3e-3, Warmup: 3, MinLR: 3e-4},
		Steps:       12,
		BatchSize:   3,
		GradAccum:   2,
		SeqLen:      32,
		EvalEvery:   4,
		EvalBatches: 2,
		Seed:        7,
		RunDir:      runDir,
		SaveEvery:   4,
		// Two kept: the rotation is exercised, and an interrupted save at step 8 still
		// leaves the one of step 4.
		KeepCheckpoints: 2,
		MetricsPath:     filepath.Join(runDir, "metrics.jsonl"),
	}
}

// trainRun runs Train on a freshly loaded model and returns the result and the loss
// of every step it took, by step.
func trainRun(t *testing.T, cfg Config, train, val Dataset, ctx context.Context) (Result, map[int]float64, error) {
	t.Helper()
	m := loadStories(t)
	losses := map[int]float64{}
	onStep := cfg.OnStep
	cfg.OnStep = func(s StepInfo) {
		losses[s.Step] = s.Loss
		if onStep != nil {
			onStep(s)
		}
	}
	res, err := Train(ctx, m, cfg, train, val)
	if res.LoRA != nil {
		t.Cleanup(func() { res.LoRA.Close() })
	}
	return res, losses, err
}

// uninterrupted is the reference: all 12 steps in one lifetime.
func uninterrupted(t *testing.T, train, val Dataset) (Result, map[int]float64) {
	t.Helper()
	res, losses, err := trainRun(t, ckptConfig(t.TempDir()), train, val, context.Background())
	require.NoError(t, err)
	require.Len(t, losses, 12)
	return res, losses
}

// assertSameRun checks per-step losses from step from on, the evaluations and the
// final adapter of a resumed run against the uninterrupted one.
func assertSameRun(t *testing.T, want Result, wantLosses map[int]float64, got Result, gotLosses map[int]float64, from int) {
	t.Helper()
	worst := 0.0
	for step := from; step <= 12; step++ {
		require.Contains(t, gotLosses, step)
		assert.InDeltaf(t, wantLosses[step], gotLosses[step], 1e-6, "loss of step %d", step)
		worst = max(worst, abs(wantLosses[step]-gotLosses[step]))
	}
	t.Logf("steps %d..12 after resuming: max |loss - uninterrupted| = %.3g (losses %.5f → %.5f)", from, worst, wantLosses[from], wantLosses[12])
	assert.Equal(t, 12, got.Steps)
	assert.Equal(t, want.Tokens, got.Tokens)
	require.Len(t, got.Evals, len(want.Evals))
	for i := range want.Evals {
		assert.Equal(t, want.Evals[i].Step, got.Evals[i].Step)
		assert.InDelta(t, want.Evals[i].Loss, got.Evals[i].Loss, 1e-6)
	}
	assert.InDelta(t, want.Epoch, got.Epoch, 1e-12)
	for _, name := range want.LoRA.Names() {
		a, err := want.LoRA.Get(name)
		require.NoError(t, err)
		b, err := got.LoRA.Get(name)
		require.NoError(t, err)
		d, _ := maxAbsDiff(a, b)
		assert.LessOrEqualf(t, d, 1e-6, "adapter tensor %s", name)
	}
}

func abs(x float64) float64 { return max(x, -x) }

// readMetrics returns metrics.jsonl's records.
func readMetrics(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), "metrics line %q", sc.Text())
		out = append(out, r)
	}
	return out
}

// assertMetricsContinue checks that the metrics file holds each of 12 steps once, in
// order, and the evaluations at 0, 4, 8, 12.
func assertMetricsContinue(t *testing.T, path string) {
	t.Helper()
	var trainSteps, evalSteps []int
	for _, r := range readMetrics(t, path) {
		switch r.Kind {
		case "train":
			trainSteps = append(trainSteps, r.Step)
		case "eval":
			evalSteps = append(evalSteps, r.Step)
		}
	}
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, trainSteps)
	assert.Equal(t, []int{0, 4, 8, 12}, evalSteps)
}

// trainCancelledAfter runs cfg and cancels it after step, expecting Train to stop
// there with the cancellation; it returns the result and the steps' losses.
func trainCancelledAfter(t *testing.T, cfg Config, step int, train, val Dataset) (Result, map[int]float64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.OnStep = func(s StepInfo) {
		if s.Step == step {
			cancel()
		}
	}
	res, losses, err := trainRun(t, cfg, train, val, ctx)
	require.ErrorIs(t, err, context.Canceled)
	return res, losses
}

func TestResumeIsExact(t *testing.T) {
	train, val := ckptData(t)
	want, wantLosses := uninterrupted(t, train, val)

	// First lifetime: cancelled after step 6, between the saves of steps 4 and 8, so
	// the cancellation itself must write checkpoint-6.
	dir := t.TempDir()
	res, first := trainCancelledAfter(t, ckptConfig(dir), 6, train, val)
	assert.Equal(t, 6, res.Steps)
	assert.Len(t, first, 6)
	for step := 1; step <= 6; step++ {
		assert.InDelta(t, wantLosses[step], first[step], 1e-6, "step %d before the interruption", step)
	}
	latest, err := LatestCheckpoint(dir)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "checkpoint-6"), latest)

	// Second lifetime: fresh model, LoRA, optimizer and loop.
	cfg := ckptConfig(dir)
	cfg.Resume = true
	got, gotLosses, err := trainRun(t, cfg, train, val, context.Background())
	require.NoError(t, err)
	assert.Equal(t, 6, got.ResumedFrom)
	assert.Len(t, gotLosses, 6, "steps 7..12 only")
	assertSameRun(t, want, wantLosses, got, gotLosses, 7)
	assertMetricsContinue(t, cfg.MetricsPath)

	// Rotation kept the newest two; the last is the end of the run.
	steps, err := listCheckpoints(dir)
	require.NoError(t, err)
	assert.Equal(t, []int{8, 12}, steps)
	assert.Equal(t, filepath.Join(dir, "checkpoint-12"), got.Checkpoint)

	// The checkpoint's adapter is llama.cpp's format with the run's final values.
	ck, err := ReadCheckpoint(got.Checkpoint)
	require.NoError(t, err)
	assert.Equal(t, 12, ck.Step)
	assert.Equal(t, 12, ck.AdamStep)
	assert.InDelta(t, ckptConfig("").Schedule.MinLR, ck.LR, 1e-12, "the cosine ends at MinLR")
	name := got.LoRA.Names()[1]
	v, err := got.LoRA.Get(name)
	require.NoError(t, err)
	assert.Equal(t, v, bytesF32(t, ck.data[roleAdapter+"/"+name]))
	ref := newLlamaRef(t, storiesPath)
	ad, err := bindings.LoadAdapter(ref.m, filepath.Join(got.Checkpoint, checkpointAdapter))
	require.NoError(t, err, "libllama loads the checkpoint's adapter")
	ad.Close()

	// Resuming a finished run trains nothing and reports it whole.
	again, againLosses, err := trainRun(t, cfg, train, val, context.Background())
	require.NoError(t, err)
	assert.Empty(t, againLosses)
	assert.Equal(t, 12, again.Steps)
	assert.Len(t, again.Evals, 4)
}

func bytesF32(t *testing.T, b []byte) []float32 {
	t.Helper()
	v, err := ggml.Dequantize(ggml.TypeF32, b, len(b)/4)
	require.NoError(t, err)
	return v
}

// TestCheckpointKilledMidWrite kills (SIGKILL) a child process while it writes the
// checkpoint of step 8, then resumes from what it left.
func TestCheckpointKilledMidWrite(t *testing.T) {
	if dir := os.Getenv("ECOTUNE_CKPT_KILL_CHILD"); dir != "" {
		killChild(t, dir)
		return
	}
	train, val := ckptData(t) // skips without the model, before starting a child
	dir := t.TempDir()
	ready := filepath.Join(dir, "child-blocked")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCheckpointKilledMidWrite$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ECOTUNE_CKPT_KILL_CHILD="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("the child never reached the checkpoint write of step 8:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	err := cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal())

	// The write of step 8 was cut short: a temporary directory, no checkpoint-8.
	temps, _ := filepath.Glob(filepath.Join(dir, ".checkpoint-8.tmp-*"))
	require.Len(t, temps, 1, "the interrupted write's temporary directory")
	for _, f := range []string{checkpointAdapter, checkpointOptimizer} {
		assert.FileExists(t, filepath.Join(temps[0], f), "the child had written %s", f)
	}
	assert.NoFileExists(t, filepath.Join(temps[0], checkpointIndex))
	assert.NoDirExists(t, filepath.Join(dir, "checkpoint-8"))
	latest, err := LatestCheckpoint(dir)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "checkpoint-4"), latest)
	ck, err := ReadCheckpoint(latest)
	require.NoError(t, err)
	assert.Equal(t, 4, ck.Step)
	// The child logged steps 5..8 after checkpoint-4; they belong to the dead lifetime.
	var logged []int
	for _, r := range readMetrics(t, filepath.Join(dir, "metrics.jsonl")) {
		if r.Kind == "train" {
			logged = append(logged, r.Step)
		}
	}
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8}, logged)

	want, wantLosses := uninterrupted(t, train, val)
	cfg := ckptConfig(dir)
	cfg.Resume = true
	got, gotLosses, err := trainRun(t, cfg, train, val, context.Background())
	require.NoError(t, err)
	assert.Equal(t, 4, got.ResumedFrom)
	assertSameRun(t, want, wantLosses, got, gotLosses, 5)
	assertMetricsContinue(t, cfg.MetricsPath)
	temps, _ = filepath.Glob(filepath.Join(dir, ".checkpoint-*"))
	assert.Empty(t, temps, "resuming removes the interrupted write")
}

// killChild is the child of TestCheckpointKilledMidWrite: it trains and, in the middle
// of writing checkpoint-8 (adapter and moments written, no index yet), says so and
// blocks until killed.
func killChild(t *testing.T, dir string) {
	train, val := ckptData(t)
	checkpointHook = func(stage string, step int) {
		if step == 8 && stage == "optimizer" {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "child-blocked"), nil, 0o644))
			select {}
		}
	}
	_, _, err := trainRun(t, ckptConfig(dir), train, val, context.Background())
	t.Fatalf("the child must be killed before it finishes (err %v)", err)
}

// TestCheckpointBadInput damages copies of a real checkpoint one way each and checks
// that reading or resuming names the file and field at fault.
func TestCheckpointBadInput(t *testing.T) {
	train, val := ckptData(t)
	dir := t.TempDir()
	cfg := ckptConfig(dir)
	cfg.Steps, cfg.Schedule.Steps, cfg.EvalEvery = 4, 12, -1
	_, _, err := trainRun(t, cfg, train, val, context.Background())
	require.NoError(t, err)
	good := filepath.Join(dir, "checkpoint-4")
	_, err = ReadCheckpoint(good)
	require.NoError(t, err)

	editIndex := func(f func(map[string]any)) func(t *testing.T, d string) {
		return func(t *testing.T, d string) {
			p := filepath.Join(d, checkpointIndex)
			raw, err := os.ReadFile(p)
			require.NoError(t, err)
			var m map[string]any
			require.NoError(t, json.Unmarshal(raw, &m))
			f(m)
			raw, err = json.Marshal(m)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, raw, 0o644))
		}
	}
	tensor0 := func(m map[string]any) map[string]any { return m["tensors"].([]any)[0].(map[string]any) }
	cases := []struct {
		name   string
		damage func(t *testing.T, d string)
		want   []string
	}{
		{"truncated index", func(t *testing.T, d string) {
			p := filepath.Join(d, checkpointIndex)
			raw, _ := os.ReadFile(p)
			require.NoError(t, os.WriteFile(p, raw[:len(raw)/2], 0o644))
		}, []string{"index.json", "unexpected EOF"}},
		{"unknown format", editIndex(func(m map[string]any) { m["format"] = 9 }), []string{"index.json", "field format is 9"}},
		{"order not a permutation", editIndex(func(m map[string]any) { m["order"].([]any)[1] = m["order"].([]any)[0] }), []string{"index.json", "field order"}},
		{"cursor past the order", editIndex(func(m map[string]any) { m["next"] = 1000 }), []string{"index.json", "field next is 1000"}},
		{"bad rng state", editIndex(func(m map[string]any) { m["dropout_rng"] = "AAAA" }), []string{"index.json", "field dropout_rng"}},
		{"shape against bytes", editIndex(func(m map[string]any) { tensor0(m)["shape"] = []int{3, 3} }), []string{"index.json", "field bytes"}},
		{"unknown role", editIndex(func(m map[string]any) { tensor0(m)["role"] = "grad" }), []string{"index.json", "field role"}},
		{"missing blob", func(t *testing.T, d string) {
			require.NoError(t, os.Remove(filepath.Join(d, checkpointOptimizer)))
		}, []string{"optimizer.bin", "no such file"}},
		{"flipped byte in the moments", func(t *testing.T, d string) {
			p := filepath.Join(d, checkpointOptimizer)
			raw, _ := os.ReadFile(p)
			raw[len(raw)/2] ^= 0x40
			require.NoError(t, os.WriteFile(p, raw, 0o644))
		}, []string{"optimizer.bin", "corrupt", "crc32"}},
		{"short blob", func(t *testing.T, d string) {
			p := filepath.Join(d, checkpointOptimizer)
			raw, _ := os.ReadFile(p)
			require.NoError(t, os.WriteFile(p, raw[:len(raw)-4], 0o644))
		}, []string{"optimizer.bin", "past the file's end"}},
		{"adapter tensor renamed in the index", editIndex(func(m map[string]any) { tensor0(m)["name"] = "blk.9.attn_q.weight.lora_a" }), []string{"adapter.gguf", "blk.9.attn_q.weight.lora_a", "missing"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "checkpoint-4")
			copyDir(t, good, d)
			c.damage(t, d)
			_, err := ReadCheckpoint(d)
			require.Error(t, err)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}

	// A sound checkpoint refused for a different run.
	resume := func(edit func(*Config), train Dataset) error {
		c := ckptConfig(dir)
		c.Steps, c.Schedule.Steps, c.EvalEvery, c.Resume = 8, 12, -1, true
		edit(&c)
		_, _, err := trainRun(t, c, train, val, context.Background())
		return err
	}
	err = resume(func(c *Config) { c.LoRA.Rank = 8 }, train)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "checkpoint-4/index.json: field config.LoRA.Rank is 4, this run asks for 8")
	err = resume(func(c *Config) { c.Schedule.Steps = 0 }, train)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "field config.Schedule.Steps is 12, this run asks for 8")
	err = resume(func(c *Config) {}, subset{train, []int{0, 1, 2}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "field examples is")
	empty := t.TempDir()
	err = resume(func(c *Config) { c.RunDir = empty }, train)
	require.ErrorIs(t, err, ErrNoCheckpoint)
	// The good one resumes: extending the run with the schedule kept.
	require.NoError(t, resume(func(c *Config) {}, train))
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(to, 0o755))
	entries, err := os.ReadDir(from)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(to, e.Name()), b, 0o644))
	}
}

// TestOutOfMemoryHalvesMicroBatch injects an allocation failure for micro-batches of
// more than three sequences into a run of 6×1: it must halve once, to 3×2, and then
// train exactly as a run configured with 3×2 (same examples per step, same dropout
// masks, since the failed allocation consumed nothing).
func TestOutOfMemoryHalvesMicroBatch(t *testing.T) {
	train, val := ckptData(t)
	base := func() Config {
		c := ckptConfig(t.TempDir())
		c.Steps, c.RunDir, c.MetricsPath, c.SaveEvery = 6, "", "", 0
		return c
	}
	cfg := base()
	cfg.BatchSize, cfg.GradAccum = 6, 1
	cfg.MetricsPath = filepath.Join(t.TempDir(), "metrics.jsonl")
	cfg.allocFail = func(n int) bool { return n > 3 }
	var logBuf bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	got, gotLosses, err := trainRun(t, cfg, train, val, context.Background())
	require.NoError(t, err)
	assert.Equal(t, 3, got.MicroBatch)
	assert.Contains(t, logBuf.String(), "out of memory")
	assert.Contains(t, logBuf.String(), "micro_batch=3 grad_accum=2")
	var ooms []Record
	for _, r := range readMetrics(t, cfg.MetricsPath) {
		if r.Kind == "oom" {
			ooms = append(ooms, r)
		}
	}
	require.Len(t, ooms, 1, "one halving, at the first allocation (the baseline evaluation)")
	assert.Equal(t, Record{Kind: "oom", Step: 0, MicroBatch: 3, GradAccum: 2}, Record{Kind: ooms[0].Kind, Step: ooms[0].Step, MicroBatch: ooms[0].MicroBatch, GradAccum: ooms[0].GradAccum})

	ref := base()
	ref.BatchSize, ref.GradAccum = 3, 2
	want, wantLosses, err := trainRun(t, ref, train, val, context.Background())
	require.NoError(t, err)
	require.Len(t, gotLosses, 6)
	for step := 1; step <= 6; step++ {
		assert.InDeltaf(t, wantLosses[step], gotLosses[step], 1e-9, "step %d", step)
	}
	assert.Equal(t, want.Tokens, got.Tokens)

	// Running out in the middle of a step, after one micro-batch of it has added its
	// gradient: the rest of the step is redone in halves. Without dropout (whose masks
	// are drawn per micro-batch shape) the losses equal a run that never ran out, up to
	// float summation order from step 3 on.
	plain := base()
	plain.LoRA.Dropout, plain.BatchSize, plain.GradAccum = 0, 4, 2
	ref2, refLosses, err := trainRun(t, plain, train, nil, context.Background())
	require.NoError(t, err)
	calls := 0
	mid := plain
	mid.allocFail = func(n int) bool {
		calls++
		return calls >= 6 && n > 2 // the second micro-batch of step 3
	}
	var midLog bytes.Buffer
	mid.Logger = slog.New(slog.NewTextHandler(&midLog, nil))
	got2, midLosses, err := trainRun(t, mid, train, nil, context.Background())
	require.NoError(t, err)
	assert.Contains(t, midLog.String(), "step=3 micro_batch=2 grad_accum=4")
	assert.Equal(t, 2, got2.MicroBatch)
	assert.Equal(t, ref2.Tokens, got2.Tokens)
	worst := 0.0
	for step := 1; step <= 6; step++ {
		tol := 1e-5
		if step < 3 {
			tol = 0
		}
		assert.InDeltaf(t, refLosses[step], midLosses[step], tol, "step %d", step)
		worst = max(worst, abs(refLosses[step]-midLosses[step]))
	}
	t.Logf("halved mid-step 3: max |loss - never halved| = %.3g", worst)

	// Nothing left to halve: the error says out of memory.
	cfg = base()
	cfg.allocFail = func(int) bool { return true }
	cfg.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	_, _, err = trainRun(t, cfg, train, val, context.Background())
	require.ErrorIs(t, err, ggml.ErrOutOfMemory)
}

func TestEarlyStoppingKeepsBest(t *testing.T) {
	train, val := ckptData(t)
	t.Run("patience runs out", func(t *testing.T) {
		// An improvement threshold no loss can beat: after the baseline, every
		// evaluation counts against patience, so the run stops at the second one after
		// it (step 4 with evaluations every 2 steps) and the best adapter is the
		// untrained one.
		dir := t.TempDir()
		cfg := ckptConfig(dir)
		cfg.EvalEvery, cfg.Patience, cfg.MinDelta = 2, 2, 100
		res, losses, err := trainRun(t, cfg, train, val, context.Background())
		require.NoError(t, err)
		assert.True(t, res.EarlyStopped)
		assert.Equal(t, 4, res.Steps)
		assert.Len(t, losses, 4)
		assert.Equal(t, 0, res.Best.Step)
		assert.Equal(t, res.Evals[0], res.Best)
		best := readBest(t, dir)
		assert.Equal(t, res.Best, best)
		f := readAdapterB(t, filepath.Join(dir, "best", "adapter.gguf"), res.LoRA.Names()[1])
		assert.Equal(t, make([]float32, len(f)), f, "lora_b of the untrained adapter is zero")
		trained, err := res.LoRA.Get(res.LoRA.Names()[1])
		require.NoError(t, err)
		assert.NotEqual(t, f, trained)
		// The stop is final: resuming does nothing.
		cfg.Resume = true
		again, againLosses, err := trainRun(t, cfg, train, val, context.Background())
		require.NoError(t, err)
		assert.Empty(t, againLosses)
		assert.True(t, again.EarlyStopped)
		assert.Equal(t, 4, again.Steps)
	})
	t.Run("best follows the lowest loss", func(t *testing.T) {
		dir := t.TempDir()
		cfg := ckptConfig(dir)
		cfg.Patience = 5
		res, _, err := trainRun(t, cfg, train, val, context.Background())
		require.NoError(t, err)
		assert.False(t, res.EarlyStopped)
		lowest := res.Evals[0]
		for _, e := range res.Evals {
			if e.Loss < lowest.Loss {
				lowest = e
			}
		}
		t.Logf("evaluations %v, best %v", res.Evals, res.Best)
		assert.Equal(t, lowest, res.Best)
		assert.Equal(t, lowest, readBest(t, dir))
		if lowest.Step == 12 {
			name := res.LoRA.Names()[1]
			want, err := res.LoRA.Get(name)
			require.NoError(t, err)
			assert.Equal(t, want, readAdapterB(t, filepath.Join(dir, "best", "adapter.gguf"), name))
		}
	})
}

func readBest(t *testing.T, dir string) EvalPoint {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "best", "best.json"))
	require.NoError(t, err)
	var p EvalPoint
	require.NoError(t, json.Unmarshal(raw, &p))
	return p
}

func readAdapterB(t *testing.T, path, name string) []float32 {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	b, err := f.Data(name)
	require.NoError(t, err)
	return bytesF32(t, b)
}

func TestEpochsSetSteps(t *testing.T) {
	train, _ := ckptData(t)
	cfg := ckptConfig("")
	cfg.RunDir, cfg.MetricsPath, cfg.SaveEvery = "", "", 0
	cfg.Epochs, cfg.EvalEvery = 2, -1
	n := train.Len()
	wantSteps := (2*n + 5) / 6 // ⌈2n / (BatchSize·GradAccum)⌉
	res, losses, err := trainRun(t, cfg, train, nil, context.Background())
	require.NoError(t, err)
	assert.Equal(t, wantSteps, res.Steps)
	assert.Len(t, losses, wantSteps)
	assert.InDelta(t, float64(6*wantSteps)/float64(n), res.Epoch, 1e-12)
	assert.GreaterOrEqual(t, res.Epoch, 2.0)
	t.Logf("%d examples, 2 epochs = %d steps of 6, %.3f passes", n, wantSteps, res.Epoch)
}

// TestTrimMetrics drops the records a dead lifetime wrote after its last checkpoint,
// including a line the kill cut short, and keeps the earlier ones byte for byte.
func TestTrimMetrics(t *testing.T) {
	p := filepath.Join(t.TempDir(), "metrics.jsonl")
	head := `{"kind":"eval","step":0,"loss":2.5,"elapsed_s":0}` + "\n" +
		`{"kind":"train","step":1,"loss":2.4,"elapsed_s":0.1}` + "\n" +
		`{"kind":"train","step":2,"loss":2.3,"elapsed_s":0.2}` + "\n"
	tail := `{"kind":"oom","step":3,"loss":0,"micro_batch":2,"elapsed_s":0.3}` + "\n" +
		`{"kind":"train","step":3,"loss":2.2,"elapsed_s":0.3}` + "\n" + `{"kind":"tra`
	require.NoError(t, os.WriteFile(p, []byte(head+tail), 0o644))
	require.NoError(t, trimMetrics(p, 2))
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, head, string(got))
	require.NoError(t, trimMetrics(filepath.Join(t.TempDir(), "absent.jsonl"), 2))

	require.NoError(t, os.WriteFile(p, []byte(head+"not json\n"+tail), 0o644))
	err = trimMetrics(p, 2)
	require.Error(t, err)
	assert.Contains(t, err.Error(), p+": line 4 is not a record")
}
