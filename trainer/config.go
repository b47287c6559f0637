package trainer

import "fmt"

// Training defaults, used where a Config field is zero.
const (
	DefaultLR        = 2e-4
	DefaultBatchSize = 4
	DefaultSeqLen    = 256
	DefaultEvalEvery = 50
)

// Config describes one training run.
type Config struct {
	LoRA      LoRAConfig
	Optimizer OptimizerConfig
	Schedule  Schedule // Steps defaults to Config.Steps, LR to DefaultLR

	Steps       int    // optimizer steps
	BatchSize   int    // sequences per micro-batch; DefaultBatchSize if 0
	GradAccum   int    // micro-batches per optimizer step; 1 if 0
	SeqLen      int    // longest sequence (tokens of input); longer examples are cut; DefaultSeqLen if 0
	EvalEvery   int    // evaluate on the validation set every this many steps; DefaultEvalEvery if 0, <0 never
	EvalBatches int    // batches per evaluation; 0 for the whole validation set
	Seed        uint64 // shuffling and dropout; LoRA.Seed is the initialisation's
	Pad         int32  // token id padding positions hold (never a target)

	// MetricsPath, if set, is the metrics.jsonl file every record is appended to.
	MetricsPath string
	// OnStep, if set, is called after every optimizer step (for a progress bar).
	OnStep func(StepInfo) `json:"-"`
	// OnEval, if set, is called after every evaluation.
	OnEval func(step int, loss float64) `json:"-"`
}

// StepInfo describes one finished optimizer step.
type StepInfo struct {
	Step, Steps  int
	Loss         float64 // mean target-token loss over the step's micro-batches
	LR           float64
	GradNorm     float64 // before clipping
	Tokens       int     // tokens processed so far
	TokensPerSec float64 // over the run so far
}

// DefaultConfig returns a Config with every default filled in and 100 steps.
func DefaultConfig() Config {
	c := Config{Steps: 100}
	c.resolve()
	return c
}

func (c *Config) resolve() {
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
	if c.Schedule.Steps == 0 {
		c.Schedule.Steps = c.Steps
	}
	if c.Schedule.LR == 0 {
		c.Schedule.LR = DefaultLR
	}
	if c.Schedule.Kind == "" {
		c.Schedule.Kind = ScheduleCosine
	}
}

func (c *Config) validate(m *Model) error {
	if c.Steps < 1 {
		return fmt.Errorf("steps %d must be at least 1", c.Steps)
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
	if err := c.Schedule.Validate(); err != nil {
		return err
	}
	return nil
}
