package trainer

import (
	"fmt"
	"log/slog"
	"math"

	"github.com/ecotune/ecotune/ggml"
)

// Training defaults, used where a Config field is zero.
const (
	DefaultLR              = 2e-4
	DefaultBatchSize       = 4
	DefaultSeqLen          = 256
	DefaultEvalEvery       = 50
	DefaultKeepCheckpoints = 3
)

// Config describes one training run. Train resolves its defaults; the resolved copy is
// what a checkpoint records and what a resumed run is checked against.
type Config struct {
	// Method is MethodLoRA (the default) or MethodFull, which trains every weight of a
	// model loaded with ModelOptions.Trainable (LoRA is then ignored).
	Method    string
	LoRA      LoRAConfig
	Optimizer OptimizerConfig
	Schedule  Schedule // Steps defaults to Config.Steps, LR to DefaultLR

	Steps     int // optimizer steps
	Epochs    int // if > 0, replaces Steps: ⌈Epochs·sequences / (BatchSize·GradAccum)⌉ steps
	BatchSize int // sequences per micro-batch (halved on out-of-memory); DefaultBatchSize if 0
	GradAccum int // micro-batches per optimizer step; 1 if 0
	SeqLen    int // longest sequence (tokens of input); longer examples are cut; DefaultSeqLen if 0
	// Packing lays several examples end to end in each sequence, grouped by best fit
	// decreasing each epoch, instead of one padded example per sequence: each example
	// is computed as if alone (attention stops at its start, positions restart), so the
	// loss and gradients are those of the padded batches, with less padding to compute.
	// BatchSize then counts packed sequences, and Epochs steps over them.
	Packing     bool
	EvalEvery   int    // evaluate on the validation set every this many steps; DefaultEvalEvery if 0, <0 never
	EvalBatches int    // batches per evaluation; 0 for the whole validation set
	Seed        uint64 // shuffling and dropout; LoRA.Seed is the initialisation's
	Pad         int32  // token id padding positions hold (never a target)

	// GradientCheckpointing recomputes each layer's activations in the backward pass
	// from the layer's input instead of keeping them from the forward pass: the same
	// gradients for much less memory (attention's scores above all) and about one more
	// forward pass of compute.
	GradientCheckpointing bool
	// CheckpointKeep, with GradientCheckpointing, names the products the forward pass
	// stores for the backward pass instead of their being recomputed: "" or
	// CheckpointKeepNone none, CheckpointKeepFFN each layer's feed-forward gate and up
	// products (2·n_ff floats a token and layer) — half of the recomputed products of a
	// Llama layer, whose inputs are the quantized base's slowest products in QLoRA — and
	// CheckpointKeepAll every product the backward pass reads again, Q and K as F32 and
	// the others as BF16 copies (the gradients then differ by that rounding).
	CheckpointKeep string

	// Patience, if > 0, stops training after this many evaluations in a row that do
	// not lower the best validation loss by more than MinDelta.
	Patience int
	MinDelta float64

	// RunDir, if set, receives checkpoint-<step>/ directories and best/adapter.gguf
	// (the adapter of the lowest validation loss so far).
	RunDir string
	// SaveEvery writes a checkpoint every this many steps; one is also written at the
	// end of the run, on early stopping and when ctx is cancelled. 0: only those.
	SaveEvery int
	// KeepCheckpoints is how many of the newest checkpoints stay; DefaultKeepCheckpoints
	// if 0, every one if < 0.
	KeepCheckpoints int
	// Resume continues from the newest complete checkpoint in RunDir (an error wrapping
	// ErrNoCheckpoint when there is none). Only Steps, Epochs, the evaluation, saving and
	// early-stopping settings and the callbacks may differ from the checkpoint's config.
	Resume bool

	// MetricsPath, if set, is the metrics.jsonl file every record is appended to.
	MetricsPath string
	// OnStep, if set, is called after every optimizer step (for a progress bar).
	OnStep func(StepInfo) `json:"-"`
	// ProfileStep, if > 0, runs the first micro-batch of that optimizer step one graph
	// node at a time and reports the time per op in its StepInfo (slower: for benchmarks).
	ProfileStep int `json:"-"`
	// OnEval, if set, is called after every evaluation.
	OnEval func(step int, loss float64) `json:"-"`
	// Logger receives warnings (the out-of-memory fallback) and checkpoint notices;
	// slog.Default() if nil.
	Logger *slog.Logger `json:"-"`

	// allocFail, set by tests only, makes the allocation of a micro-batch of n
	// sequences fail as if the device were out of memory.
	allocFail func(n int) bool
}

// StepInfo describes one finished optimizer step.
type StepInfo struct {
	Step, Steps  int
	Loss         float64 // mean target-token loss over the step's micro-batches
	LR           float64
	GradNorm     float64 // before clipping
	Tokens       int     // tokens processed so far
	TokensPerSec float64 // over the run so far
	// Profile is the time per op of the step's first micro-batch when ProfileStep asked
	// for it, longest first.
	Profile []ggml.OpTime
}

// Values of Config.CheckpointKeep.
const (
	CheckpointKeepNone = "none" // recompute every product of a layer
	CheckpointKeepFFN  = "ffn"  // keep the feed-forward gate and up products
	CheckpointKeepAll  = "all"  // keep every product read again: Q and K as F32, the others as BF16
)

// DefaultConfig returns a Config with every default filled in and 100 steps (the
// schedule's length follows Steps unless set).
func DefaultConfig() Config {
	c := Config{Steps: 100}
	c.resolve()
	return c
}

func (c *Config) resolve() {
	if c.Method == "" {
		c.Method = MethodLoRA
	}
	c.LoRA = c.LoRA.withDefaults()
	c.Optimizer = c.Optimizer.withDefaults()
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.GradAccum == 0 {
		c.GradAccum = 1
	}
	if c.SeqLen == 0 {
		c.SeqLen = DefaultSeqLen
	}
	if c.EvalEvery == 0 {
		c.EvalEvery = DefaultEvalEvery
	}
	if c.KeepCheckpoints == 0 {
		c.KeepCheckpoints = DefaultKeepCheckpoints
	}
	if c.Schedule.LR == 0 {
		c.Schedule.LR = DefaultLR
	}
	if c.Schedule.Kind == "" {
		c.Schedule.Kind = ScheduleCosine
	}
}

// resolveSteps turns Epochs into Steps for a training set of n sequences and lets the
// schedule default to the run's length. It runs after resolve, once n is known, so
// that a Config changed after DefaultConfig still gets a schedule of its own length.
func (c *Config) resolveSteps(n int) {
	if c.Epochs > 0 && c.BatchSize > 0 && c.GradAccum > 0 {
		perStep := c.BatchSize * c.GradAccum
		c.Steps = int(math.Ceil(float64(c.Epochs) * float64(n) / float64(perStep)))
	}
	if c.Schedule.Steps == 0 {
		c.Schedule.Steps = c.Steps
	}
}

func (c *Config) validate(m *Model) error {
	switch {
	case c.Method == MethodFull && !m.trainable:
		return fmt.Errorf("method %s needs the model loaded with ModelOptions.Trainable", MethodFull)
	case c.Method != MethodLoRA && c.Method != MethodFull:
		return fmt.Errorf("method %q is not %s or %s", c.Method, MethodLoRA, MethodFull)
	case c.CheckpointKeep != "" && c.CheckpointKeep != CheckpointKeepNone && c.CheckpointKeep != CheckpointKeepFFN && c.CheckpointKeep != CheckpointKeepAll:
		return fmt.Errorf("checkpoint keep %q is not %s, %s or %s", c.CheckpointKeep, CheckpointKeepNone, CheckpointKeepFFN, CheckpointKeepAll)
	}
	if c.Steps < 1 {
		return fmt.Errorf("steps %d must be at least 1", c.Steps)
	}
	if c.Epochs < 0 {
		return fmt.Errorf("epochs %d must not be negative", c.Epochs)
	}
	if c.BatchSize < 1 || c.GradAccum < 1 || c.SeqLen < 1 {
		return fmt.Errorf("batch size %d, gradient accumulation %d and sequence length %d must be positive", c.BatchSize, c.GradAccum, c.SeqLen)
	}
	if c.Pad < 0 || int(c.Pad) >= m.HP.Vocab {
		return fmt.Errorf("padding token %d is outside the vocabulary of %d", c.Pad, m.HP.Vocab)
	}
	if c.Optimizer.ClipNorm < 0 || c.Optimizer.WeightDecay < 0 || c.Optimizer.WeightDecay > 1 {
		return fmt.Errorf("clip norm %g must be ≥ 0 and weight decay %g in [0, 1]", c.Optimizer.ClipNorm, c.Optimizer.WeightDecay)
	}
	if o := c.Optimizer; !(o.Beta1 >= 0 && o.Beta1 < 1 && o.Beta2 >= 0 && o.Beta2 < 1 && o.Eps > 0) {
		return fmt.Errorf("adam betas %g, %g must be in [0, 1) and epsilon %g positive", o.Beta1, o.Beta2, o.Eps)
	}
	if c.Patience < 0 || c.MinDelta < 0 || math.IsNaN(c.MinDelta) {
		return fmt.Errorf("patience %d and minimum improvement %g must not be negative", c.Patience, c.MinDelta)
	}
	if c.SaveEvery < 0 {
		return fmt.Errorf("save-every %d must not be negative", c.SaveEvery)
	}
	if (c.Resume || c.SaveEvery > 0) && c.RunDir == "" {
		return fmt.Errorf("resuming and saving checkpoints need a run directory (Config.RunDir)")
	}
	if err := c.Schedule.Validate(); err != nil {
		return err
	}
	return nil
}

func (c *Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}
