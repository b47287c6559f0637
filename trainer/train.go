package trainer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ecotune/ecotune/ggml"
)

// EvalPoint is a validation loss measured after Step optimizer steps.
type EvalPoint struct {
	Step int
	Loss float64
}

// Result is what a training run produced. LoRA belongs to the caller, who must Close
// it (after writing it with WriteAdapter).
type Result struct {
	LoRA         *LoRA
	Steps        int         // optimizer steps taken
	TrainLoss    float64     // loss of the last step
	Evals        []EvalPoint // validation losses, the first before any step
	Tokens       int         // tokens processed
	TokensPerSec float64
	Elapsed      time.Duration
}

// Train fine-tunes a new LoRA on m with examples from train, measuring the loss on val
// (which may be nil or empty) before the first step, every cfg.EvalEvery steps and at
// the end. It stops early with an error on a NaN or infinite loss (ErrNonFinite) or
// when ctx is done; the Result then holds the steps taken and its LoRA is closed.
func Train(ctx context.Context, m *Model, cfg Config, train, val Dataset) (res Result, err error) {
	cfg.resolve()
	if err := cfg.validate(m); err != nil {
		return res, fmt.Errorf("trainer: %w", err)
	}
	if train == nil || train.Len() == 0 {
		return res, fmt.Errorf("trainer: the training set is empty")
	}
	lora, err := NewLoRA(m, cfg.LoRA)
	if err != nil {
		return res, err
	}
	l := &loop{m: m, cfg: cfg, lora: lora, train: train, val: val,
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x7a1))}
	defer func() {
		res.Elapsed = time.Since(l.start)
		l.close()
		if err != nil {
			lora.Close()
			res.LoRA = nil
		}
	}()
	if l.opt, err = newAdamW(m, lora, cfg.Optimizer); err != nil {
		return res, err
	}
	if cfg.MetricsPath != "" {
		if l.metrics, err = openMetrics(cfg.MetricsPath); err != nil {
			return res, err
		}
	}
	res.LoRA = lora
	l.start = time.Now()
	if err := l.evaluate(0, &res); err != nil {
		return res, err
	}
	for step := 1; step <= cfg.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("trainer: stopped after %d steps: %w", res.Steps, err)
		}
		info, err := l.step(step)
		if err != nil {
			return res, fmt.Errorf("trainer: step %d: %w", step, err)
		}
		res.Steps, res.TrainLoss, res.Tokens, res.TokensPerSec = step, info.Loss, info.Tokens, info.TokensPerSec
		if err := l.metrics.write(Record{Kind: "train", Step: step, Loss: info.Loss, LR: info.LR, GradNorm: info.GradNorm,
			Tokens: info.Tokens, TokensPerSec: info.TokensPerSec, ElapsedSec: time.Since(l.start).Seconds()}); err != nil {
			return res, err
		}
		if cfg.OnStep != nil {
			cfg.OnStep(info)
		}
		if cfg.EvalEvery > 0 && (step%cfg.EvalEvery == 0 || step == cfg.Steps) {
			if err := l.evaluate(step, &res); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// loop is the state of one Train call.
type loop struct {
	m          *Model
	cfg        Config
	lora       *LoRA
	opt        *adamW
	train, val Dataset
	rng        *rand.Rand
	metrics    *metricsLog
	start      time.Time
	tokens     int

	order []int // shuffled training indices of the current epoch
	next  int

	graph    *stepGraph // the last graph built, reused while the batch shape stays
	graphKey [4]int
}

func (l *loop) close() {
	l.graph.Close()
	l.opt.Close()
	l.metrics.Close()
}

// nextBatch draws the next BatchSize training examples, reshuffling at each epoch.
func (l *loop) nextBatch() (*Batch, error) {
	exs := make([]Example, 0, l.cfg.BatchSize)
	for len(exs) < l.cfg.BatchSize {
		if l.next >= len(l.order) {
			l.order = l.rng.Perm(l.train.Len())
			l.next = 0
		}
		ex, err := l.train.Example(l.order[l.next])
		l.next++
		if err != nil {
			return nil, err
		}
		exs = append(exs, ex)
	}
	return l.batch(exs)
}

// batch pads examples to the longest one (at most SeqLen inputs).
func (l *loop) batch(exs []Example) (*Batch, error) {
	T := 1
	for _, ex := range exs {
		T = max(T, min(len(ex.IDs)-1, l.cfg.SeqLen))
	}
	return NewBatch(exs, T, l.cfg.Pad)
}

// graphFor returns a step graph for b's shape, reusing the last one when it fits.
func (l *loop) graphFor(b *Batch, train bool) (*stepGraph, error) {
	key := [4]int{b.B, b.T, b.Targets(), 0}
	if train {
		key[3] = 1
	}
	if l.graph != nil && l.graphKey == key {
		return l.graph, nil
	}
	l.graph.Close()
	l.graph = nil
	var accs []*ggml.Tensor
	dropout := float32(0)
	if train {
		accs, dropout = l.opt.accs, l.cfg.LoRA.Dropout
	}
	g, err := newStepGraph(l.m, l.lora, accs, b.B, b.T, key[2], dropout)
	if err != nil {
		return nil, err
	}
	l.graph, l.graphKey = g, key
	return g, nil
}

// step runs GradAccum micro-batches and one optimizer update.
func (l *loop) step(step int) (StepInfo, error) {
	info := StepInfo{Step: step, Steps: l.cfg.Steps, LR: l.cfg.Schedule.At(step)}
	var lossSum float64
	targets := 0
	for micro := 0; micro < l.cfg.GradAccum; micro++ {
		b, err := l.nextBatch()
		if err != nil {
			return info, err
		}
		k := b.Targets()
		if k == 0 {
			continue // nothing to learn from (every token masked)
		}
		g, err := l.graphFor(b, true)
		if err != nil {
			return info, err
		}
		// Weighting each micro-batch's mean loss by its target count makes the step's
		// gradient the mean over all its target tokens.
		loss, err := g.run(b, float32(k), l.rng)
		if err != nil {
			return info, err
		}
		lossSum += loss * float64(k)
		targets += k
		l.tokens += b.Real
	}
	if targets == 0 {
		return info, errors.New("no target tokens in any micro-batch: check the loss masks")
	}
	norm, err := l.opt.step(info.LR, targets)
	if err != nil {
		return info, err
	}
	info.Loss = lossSum / float64(targets)
	info.GradNorm = norm
	info.Tokens = l.tokens
	info.TokensPerSec = float64(l.tokens) / time.Since(l.start).Seconds()
	return info, nil
}

// evaluate measures the target-token mean loss on the validation set.
func (l *loop) evaluate(step int, res *Result) error {
	if l.val == nil || l.val.Len() == 0 || l.cfg.EvalEvery < 0 {
		return nil
	}
	loss, err := l.evalLoss()
	if err != nil {
		return fmt.Errorf("trainer: evaluation at step %d: %w", step, err)
	}
	res.Evals = append(res.Evals, EvalPoint{Step: step, Loss: loss})
	if err := l.metrics.write(Record{Kind: "eval", Step: step, Loss: loss, ElapsedSec: time.Since(l.start).Seconds()}); err != nil {
		return err
	}
	if l.cfg.OnEval != nil {
		l.cfg.OnEval(step, loss)
	}
	return nil
}

func (l *loop) evalLoss() (float64, error) {
	n := l.val.Len()
	batches := (n + l.cfg.BatchSize - 1) / l.cfg.BatchSize
	if l.cfg.EvalBatches > 0 {
		batches = min(batches, l.cfg.EvalBatches)
	}
	var sum float64
	targets := 0
	for i := 0; i < batches; i++ {
		var exs []Example
		for j := i * l.cfg.BatchSize; j < min(n, (i+1)*l.cfg.BatchSize); j++ {
			ex, err := l.val.Example(j)
			if err != nil {
				return 0, err
			}
			exs = append(exs, ex)
		}
		b, err := l.batch(exs)
		if err != nil {
			return 0, err
		}
		k := b.Targets()
		if k == 0 {
			continue
		}
		g, err := l.graphFor(b, false)
		if err != nil {
			return 0, err
		}
		loss, err := g.run(b, 0, nil)
		if err != nil {
			return 0, err
		}
		sum += loss * float64(k)
		targets += k
	}
	if targets == 0 {
		return 0, errors.New("the validation set has no target tokens")
	}
	return sum / float64(targets), nil
}
