package trainer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/ecotune/ecotune/ggml"
)

// EvalPoint is a validation loss measured after Step optimizer steps.
type EvalPoint struct {
	Step int     `json:"step"`
	Loss float64 `json:"loss"`
}

// Result is what a training run produced. LoRA belongs to the caller, who must Close
// it (after writing it with WriteAdapter). A resumed run reports the whole run: its
// Steps, Tokens and Evals include those before the checkpoint.
type Result struct {
	LoRA         *LoRA
	Steps        int         // optimizer steps taken
	TrainLoss    float64     // loss of the last step
	Evals        []EvalPoint // validation losses, the first before any step
	Best         EvalPoint   // the lowest of Evals (meaningless when Evals is empty)
	EarlyStopped bool        // Patience ran out before Steps
	Epoch        float64     // passes over the training set so far
	MicroBatch   int         // sequences per micro-batch at the end (less than BatchSize after running out of memory)
	ResumedFrom  int         // the checkpoint's step, 0 for a fresh run
	Checkpoint   string      // the last checkpoint directory written, if any
	Tokens       int         // tokens processed
	TokensPerSec float64
	Elapsed      time.Duration // this call's time (not the earlier lifetimes of a resumed run)
}

// Train fine-tunes a new LoRA on m with examples from train, measuring the loss on val
// (which may be nil or empty) before the first step, every cfg.EvalEvery steps and at
// the end. With cfg.RunDir it writes checkpoints (see Config.SaveEvery) and the best
// adapter, and with cfg.Resume it first restores the newest checkpoint there and
// continues as if never interrupted. It stops early with an error on a NaN or infinite
// loss (ErrNonFinite) or when ctx is done (after checkpointing the last step); the
// Result then holds the steps taken and its LoRA is closed.
func Train(ctx context.Context, m *Model, cfg Config, train, val Dataset) (res Result, err error) {
	if train == nil || train.Len() == 0 {
		return res, fmt.Errorf("trainer: the training set is empty")
	}
	cfg.resolve()
	units := train.Len() // what an epoch draws: examples, or rows of them when packing
	if cfg.Packing {
		sizes, err := spans(train, cfg.SeqLen)
		if err != nil {
			return res, fmt.Errorf("trainer: %w", err)
		}
		units = len(packRows(sizes, cfg.SeqLen))
	}
	cfg.resolveSteps(units)
	if err := cfg.validate(m); err != nil {
		return res, fmt.Errorf("trainer: %w", err)
	}
	var ck *Checkpoint
	if cfg.RunDir != "" {
		if err := os.MkdirAll(cfg.RunDir, 0o755); err != nil {
			return res, fmt.Errorf("trainer: run directory: %w", err)
		}
		// Left by a process killed while writing or deleting a checkpoint.
		if err := removeStaleTemps(cfg.RunDir); err != nil {
			return res, err
		}
		if cfg.Resume {
			dir, err := LatestCheckpoint(cfg.RunDir)
			if err != nil {
				return res, err
			}
			if ck, err = ReadCheckpoint(dir); err != nil {
				return res, fmt.Errorf("%w (to resume from the checkpoint before it, delete %s)", err, dir)
			}
			if err := ck.compatible(m, &cfg, train.Len()); err != nil {
				return res, err
			}
		}
	}
	var lora *LoRA
	var tr trainable = fullWeights{m}
	if cfg.Method == MethodLoRA {
		if lora, err = NewLoRA(m, cfg.LoRA); err != nil {
			return res, err
		}
		tr = lora
	}
	l := &loop{m: m, cfg: cfg, lora: lora, tr: tr, train: train, val: val, log: cfg.logger(), micro: cfg.BatchSize,
		shuffle: rand.NewPCG(cfg.Seed, 0x7a1), drop: rand.NewPCG(cfg.Seed, 0xd40), best: EvalPoint{Step: -1}}
	l.shuffleRng, l.dropRng = rand.New(l.shuffle), rand.New(l.drop)
	l.start = time.Now()
	defer func() {
		res.Elapsed = time.Since(l.start)
		l.close()
		if err != nil {
			lora.Close()
			res.LoRA = nil
		}
	}()
	if l.opt, err = newAdamW(m, tr.params(), cfg.Optimizer); err != nil {
		return res, err
	}
	first := 1
	if ck != nil {
		if err := l.restore(ck); err != nil {
			return res, err
		}
		first = ck.Step + 1
		res.ResumedFrom, res.Steps, res.TrainLoss, res.Checkpoint = ck.Step, ck.Step, ck.TrainLoss, ck.dir
		l.log.Info("trainer: resuming", "checkpoint", ck.dir, "step", ck.Step, "steps", cfg.Steps)
		if cfg.MetricsPath != "" {
			// Records of steps after the checkpoint come from the lost lifetime; this run
			// produces them again.
			if err := trimMetrics(cfg.MetricsPath, ck.Step); err != nil {
				return res, err
			}
		}
	}
	if cfg.MetricsPath != "" {
		if l.metrics, err = openMetrics(cfg.MetricsPath); err != nil {
			return res, err
		}
	}
	res.LoRA = lora
	defer func() { l.fill(&res) }()
	if ck == nil {
		if err := l.evaluate(0); err != nil {
			return res, err
		}
	} else if ck.EarlyStopped {
		return res, nil
	}
	saved := first - 1 // the step of the newest checkpoint of this run
	for step := first; step <= cfg.Steps; step++ {
		if err := ctx.Err(); err != nil {
			if cfg.RunDir != "" && res.Steps > saved {
				if res.Checkpoint, err = l.save(res.Steps, res.TrainLoss); err != nil {
					return res, fmt.Errorf("trainer: stopped after %d steps, and checkpointing failed: %w", res.Steps, err)
				}
			}
			return res, fmt.Errorf("trainer: stopped after %d steps: %w", res.Steps, ctx.Err())
		}
		info, err := l.step(step)
		if err != nil {
			return res, fmt.Errorf("trainer: step %d: %w", step, err)
		}
		res.Steps, res.TrainLoss = step, info.Loss
		if err := l.metrics.write(Record{Kind: "train", Step: step, Loss: info.Loss, LR: info.LR, GradNorm: info.GradNorm,
			Tokens: info.Tokens, TokensPerSec: info.TokensPerSec, ElapsedSec: l.elapsed().Seconds()}); err != nil {
			return res, err
		}
		if cfg.OnStep != nil {
			cfg.OnStep(info)
		}
		if cfg.EvalEvery > 0 && (step%cfg.EvalEvery == 0 || step == cfg.Steps) {
			if err := l.evaluate(step); err != nil {
				return res, err
			}
			if cfg.Patience > 0 && l.sinceBest >= cfg.Patience {
				l.earlyStopped = true
				l.log.Info("trainer: early stopping", "step", step, "best_step", l.best.Step, "best_loss", l.best.Loss)
			}
		}
		if cfg.RunDir != "" && (l.earlyStopped || step == cfg.Steps || (cfg.SaveEvery > 0 && step%cfg.SaveEvery == 0)) {
			if res.Checkpoint, err = l.save(step, info.Loss); err != nil {
				return res, err
			}
			saved = step
		}
		if l.earlyStopped {
			break
		}
	}
	return res, nil
}

// loop is the state of one Train call; everything in it that shapes the rest of the
// run is in a checkpoint (see save and restore).
type loop struct {
	m          *Model
	cfg        Config
	lora       *LoRA     // nil with MethodFull
	tr         trainable // lora, or the model's weights
	opt        *adamW
	train, val Dataset
	log        *slog.Logger
	metrics    *metricsLog
	start      time.Time
	before     time.Duration // elapsed in earlier lifetimes of a resumed run
	tokens     int

	// Two streams, so that the data order does not depend on whether dropout is on.
	shuffle, drop       *rand.PCG
	shuffleRng, dropRng *rand.Rand
	epoch               int     // shuffles drawn so far
	order               []int   // shuffled training indices of the current epoch
	rows                [][]int // when packing: order's examples grouped into sequences (packOrder)
	next                int     // position in order, or in rows when packing
	micro               int     // sequences per micro-batch
	valRows             [][]int // when packing: the validation set's examples grouped into sequences

	evals        []EvalPoint
	best         EvalPoint // Step -1 until the first evaluation
	sinceBest    int       // evaluations since best
	earlyStopped bool

	graph    *stepGraph // the last graph built, reused while the batch shape stays
	graphKey [4]int
}

func (l *loop) close() {
	l.graph.Close()
	l.opt.Close()
	l.metrics.Close()
}

func (l *loop) elapsed() time.Duration { return l.before + time.Since(l.start) }

// fill copies the run's totals into res.
func (l *loop) fill(res *Result) {
	res.Evals = append([]EvalPoint(nil), l.evals...)
	if l.best.Step >= 0 {
		res.Best = l.best
	}
	res.EarlyStopped = l.earlyStopped
	res.MicroBatch = l.micro
	res.Tokens = l.tokens
	if s := l.elapsed().Seconds(); s > 0 {
		res.TokensPerSec = float64(l.tokens) / s
	}
	if n := l.epochLen(); n > 0 && l.epoch > 0 {
		res.Epoch = float64(l.epoch-1) + float64(l.next)/float64(n)
	}
}

// epochLen is the number of sequences an epoch draws.
func (l *loop) epochLen() int {
	if l.cfg.Packing {
		return len(l.rows)
	}
	return len(l.order)
}

// draw takes the next n training sequences (each an example, or several when
// packing), reshuffling at each epoch.
func (l *loop) draw(n int) ([][]Example, error) {
	seqs := make([][]Example, 0, n)
	for len(seqs) < n {
		if l.next >= l.epochLen() {
			l.order = l.shuffleRng.Perm(l.train.Len())
			l.next = 0
			l.epoch++
			if err := l.packOrder(); err != nil {
				return nil, err
			}
		}
		idx := []int{l.order[l.next]}
		if l.cfg.Packing {
			idx = l.rows[l.next]
		}
		l.next++
		seq, err := examples(l.train, idx)
		if err != nil {
			return nil, err
		}
		seqs = append(seqs, seq)
	}
	return seqs, nil
}

// packOrder groups the current epoch's order into sequences when packing: rows of
// order's examples, in an order that follows the shuffle (see packRows).
func (l *loop) packOrder() error {
	if !l.cfg.Packing {
		return nil
	}
	sizes, err := spans(subset{l.train, l.order}, l.cfg.SeqLen)
	if err != nil {
		return err
	}
	l.rows = packRows(sizes, l.cfg.SeqLen)
	for _, r := range l.rows {
		for j, k := range r {
			r[j] = l.order[k]
		}
	}
	return nil
}

// spans lists the input positions each example of d takes (exampleSpan).
func spans(d Dataset, T int) ([]int, error) {
	sizes := make([]int, d.Len())
	for i := range sizes {
		ex, err := d.Example(i)
		if err != nil {
			return nil, err
		}
		sizes[i] = exampleSpan(ex, T)
	}
	return sizes, nil
}

// examples reads the examples of d at idx.
func examples(d Dataset, idx []int) ([]Example, error) {
	exs := make([]Example, len(idx))
	for j, i := range idx {
		ex, err := d.Example(i)
		if err != nil {
			return nil, err
		}
		exs[j] = ex
	}
	return exs, nil
}

// batch pads sequences to the longest one (at most SeqLen inputs); each is one
// example, or when packing several laid end to end.
func (l *loop) batch(seqs [][]Example) (*Batch, error) {
	T := 1
	for _, seq := range seqs {
		n := 0
		for _, ex := range seq {
			n += exampleSpan(ex, l.cfg.SeqLen)
		}
		T = max(T, min(n, l.cfg.SeqLen))
	}
	if l.cfg.Packing {
		return NewPackedBatch(seqs, T, l.cfg.Pad)
	}
	exs := make([]Example, len(seqs))
	for i, seq := range seqs {
		exs[i] = seq[0]
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
	var params []*ggml.Tensor
	if train {
		params = l.tr.params()
	}
	ck := checkpointNone
	switch {
	case !train || !l.cfg.GradientCheckpointing:
	case l.cfg.CheckpointKeep == CheckpointKeepFFN:
		ck = checkpointKeepFFN
	case l.cfg.CheckpointKeep == CheckpointKeepAll:
		ck = checkpointKeepAll
	default:
		ck = checkpointFull
	}
	g, err := newStepGraph(l.m, l.lora, params, accs, b.B, b.T, key[2], b.Starts != nil, dropout, ck)
	if err != nil {
		return nil, err
	}
	l.graph, l.graphKey = g, key
	return g, nil
}

// run computes b's loss, accumulating weight·∇loss when training; with prof non-nil it
// computes one node at a time and stores the time per op there.
func (l *loop) run(b *Batch, train bool, weight float32, prof *[]ggml.OpTime) (float64, error) {
	if l.cfg.allocFail != nil && l.cfg.allocFail(b.B) {
		return 0, fmt.Errorf("trainer: allocating the graph of %d sequences (injected): %w", b.B, ggml.ErrOutOfMemory)
	}
	g, err := l.graphFor(b, train)
	if err != nil {
		return 0, err
	}
	var rng *rand.Rand
	if train {
		rng = l.dropRng
	}
	return g.run(b, weight, rng, prof)
}

// shrink handles an out-of-memory error of a micro-batch: it halves the micro-batch
// (so a step runs twice as many of them over the same examples) and reports whether
// the caller should retry. ggml's allocator fails before computing anything, so the
// gradient accumulators and the dropout stream are untouched and the retry is clean.
func (l *loop) shrink(step int, err error) bool {
	if !errors.Is(err, ggml.ErrOutOfMemory) || l.micro <= 1 {
		return false
	}
	l.graph.Close()
	l.graph = nil
	l.micro /= 2
	perStep := l.cfg.BatchSize * l.cfg.GradAccum
	accum := (perStep + l.micro - 1) / l.micro
	l.log.Warn("trainer: out of memory; halving the micro-batch and doubling gradient accumulation",
		"step", step, "micro_batch", l.micro, "grad_accum", accum, "error", err)
	_ = l.metrics.write(Record{Kind: "oom", Step: step, MicroBatch: l.micro, GradAccum: accum, ElapsedSec: l.elapsed().Seconds()})
	return true
}

// step runs one optimizer update over BatchSize·GradAccum sequences, in micro-batches of
// l.micro sequences.
func (l *loop) step(step int) (StepInfo, error) {
	info := StepInfo{Step: step, Steps: l.cfg.Steps, LR: l.cfg.Schedule.At(step)}
	exs, err := l.draw(l.cfg.BatchSize * l.cfg.GradAccum)
	if err != nil {
		return info, err
	}
	var lossSum float64
	targets := 0
	for i := 0; i < len(exs); {
		n := min(l.micro, len(exs)-i)
		b, err := l.batch(exs[i : i+n])
		if err != nil {
			return info, err
		}
		k := b.Targets()
		if k == 0 {
			i += n
			continue // nothing to learn from (every token masked)
		}
		// Weighting each micro-batch's mean loss by its target count makes the step's
		// gradient the mean over all its target tokens, whatever the micro-batch size.
		var prof *[]ggml.OpTime
		if step == l.cfg.ProfileStep && i == 0 {
			prof = &info.Profile
		}
		loss, err := l.run(b, true, float32(k), prof)
		if err != nil {
			if l.shrink(step, err) {
				continue
			}
			return info, err
		}
		lossSum += loss * float64(k)
		targets += k
		l.tokens += b.Real
		i += n
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
	info.TokensPerSec = float64(l.tokens) / l.elapsed().Seconds()
	return info, nil
}

// evaluate measures the target-token mean loss on the validation set, tracks the best
// one (writing its adapter to RunDir/best) and counts evaluations since.
func (l *loop) evaluate(step int) error {
	if l.val == nil || l.val.Len() == 0 || l.cfg.EvalEvery < 0 {
		return nil
	}
	loss, err := l.evalLoss(step)
	if err != nil {
		return fmt.Errorf("trainer: evaluation at step %d: %w", step, err)
	}
	l.evals = append(l.evals, EvalPoint{Step: step, Loss: loss})
	if err := l.metrics.write(Record{Kind: "eval", Step: step, Loss: loss, ElapsedSec: l.elapsed().Seconds()}); err != nil {
		return err
	}
	if l.best.Step < 0 || loss < l.best.Loss-l.cfg.MinDelta {
		l.best, l.sinceBest = EvalPoint{Step: step, Loss: loss}, 0
		if l.cfg.RunDir != "" {
			if err := writeBest(l.cfg.RunDir, l.tr, l.best); err != nil {
				return err
			}
		}
	} else {
		l.sinceBest++
	}
	if l.cfg.OnEval != nil {
		l.cfg.OnEval(step, loss)
	}
	return nil
}

func (l *loop) evalLoss(step int) (float64, error) {
	n := l.val.Len()
	if l.cfg.Packing {
		if l.valRows == nil {
			sizes, err := spans(l.val, l.cfg.SeqLen)
			if err != nil {
				return 0, err
			}
			l.valRows = packRows(sizes, l.cfg.SeqLen)
		}
		n = len(l.valRows)
	}
	if l.cfg.EvalBatches > 0 {
		n = min(n, l.cfg.EvalBatches*l.cfg.BatchSize)
	}
	var sum float64
	targets := 0
	for i := 0; i < n; {
		m := min(l.micro, n-i)
		seqs := make([][]Example, 0, m)
		for j := i; j < i+m; j++ {
			idx := []int{j}
			if l.cfg.Packing {
				idx = l.valRows[j]
			}
			seq, err := examples(l.val, idx)
			if err != nil {
				return 0, err
			}
			seqs = append(seqs, seq)
		}
		b, err := l.batch(seqs)
		if err != nil {
			return 0, err
		}
		k := b.Targets()
		if k == 0 {
			i += m
			continue
		}
		loss, err := l.run(b, false, 0, nil)
		if err != nil {
			if l.shrink(step, err) {
				continue
			}
			return 0, err
		}
		sum += loss * float64(k)
		targets += k
		i += m
	}
	if targets == 0 {
		return 0, errors.New("the validation set has no target tokens")
	}
	return sum / float64(targets), nil
}
