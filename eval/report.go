package eval

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ecotune/ecotune/bindings"
)

// Item is one evaluation example: a prompt, the answers it should produce,
// and optionally its tokens and training mask for ReferenceLoss.
type Item struct {
	ID         string   `json:"id,omitempty"`
	Prompt     string   `json:"prompt"`
	References []string `json:"references"`
	// Loss is the example as training tokenizes and masks it (prompt and
	// reference, targets on the reference); nil leaves it out of the loss.
	Loss *LossSequence `json:"-"`
}

// System is one model variant to evaluate: the base model with these
// adapters (none for the base model itself).
type System struct {
	Name     string
	Adapters []bindings.AdapterScale
}

// EvaluateOptions configures Evaluate.
type EvaluateOptions struct {
	// Generate configures the answers; its Parallel 0 means 8 here, and it is
	// capped at the number of items.
	Generate GenerateOptions
	// Score configures the metrics.
	Score ScoreOptions
	// SeqLen is the most tokens a sequence (prompt plus output, or an example
	// for the loss) may hold; 0 means 512.
	SeqLen int
	// Threads is the CPU thread count; 0 means one per CPU.
	Threads int
	// Progress, when set, is called as each system starts and finishes.
	Progress func(system string, stage string)
}

// LossSummary is a system's loss on the references.
type LossSummary struct {
	// MeanNLL is the token-weighted mean negative log-likelihood of the
	// reference tokens (nats), the validation loss a trainer reports.
	MeanNLL float64 `json:"mean_nll"`
	// Perplexity is exp(MeanNLL).
	Perplexity float64 `json:"perplexity"`
	// Tokens counts the scored reference tokens.
	Tokens int `json:"tokens"`
}

// SystemResult is the dataset-level result of one system.
type SystemResult struct {
	Name     string   `json:"name"`
	Adapters []string `json:"adapters,omitempty"`
	Table    Table    `json:"metrics"`
	// Loss is nil when no item had a LossSequence.
	Loss *LossSummary `json:"loss,omitempty"`
	// GenerateSeconds is the wall time of generating every answer.
	GenerateSeconds float64 `json:"generate_seconds"`
	// TokensPerSec is generated tokens over GenerateSeconds.
	TokensPerSec float64 `json:"tokens_per_sec"`
}

// Output is one system's answer to one item.
type Output struct {
	Text   string       `json:"text"`
	Finish string       `json:"finish"`
	Tokens int          `json:"tokens"`
	Scores ExampleScore `json:"scores"`
	// Loss is the item's mean reference NLL, absent without a LossSequence.
	Loss *float64 `json:"loss,omitempty"`
}

// ExampleResult is one item with every system's answer, in Systems order.
type ExampleResult struct {
	Index      int      `json:"index"`
	ID         string   `json:"id,omitempty"`
	Prompt     string   `json:"prompt"`
	References []string `json:"references"`
	Outputs    []Output `json:"outputs"`
	// Delta is the token F1 of the first adapted system minus the base
	// system's, in points (0..100 scale); 0 with a single system.
	Delta float64 `json:"delta_f1"`
}

// Report is the result of Evaluate, what report.json holds.
type Report struct {
	Model    string          `json:"model"`
	Data     string          `json:"data,omitempty"`
	Options  ReportSettings  `json:"settings"`
	Systems  []SystemResult  `json:"systems"`
	Examples []ExampleResult `json:"examples"`
	Training *TrainingLog    `json:"training,omitempty"`
}

// ReportSettings records how the answers were produced.
type ReportSettings struct {
	MaxTokens   int      `json:"max_tokens"`
	Temperature float32  `json:"temperature"`
	Seed        uint32   `json:"seed"`
	Stop        []string `json:"stop,omitempty"`
	Chat        bool     `json:"chat"`
	Parallel    int      `json:"parallel"`
	RougeStem   bool     `json:"rouge_stem"`
}

// Evaluate generates an answer to every item with each system on model and
// scores it: EM, F1, BLEU and ROUGE against the references (Score), and the
// loss of the references under each system when items carry a LossSequence.
// All systems answer the same prompts with the same settings. Examples come
// back sorted by Delta, best gains first and worst regressions last.
func Evaluate(goctx context.Context, model *bindings.Model, systems []System, items []Item, opts EvaluateOptions) (*Report, error) {
	if len(systems) == 0 {
		return nil, fmt.Errorf("eval: evaluate: no systems")
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("eval: evaluate: %w", ErrEmptyCorpus)
	}
	seqLen := opts.SeqLen
	if seqLen == 0 {
		seqLen = 512
	}
	parallel := opts.Generate.Parallel
	if parallel == 0 {
		parallel = 8
	}
	parallel = min(parallel, len(items))
	c, err := bindings.NewContext(model, BatchContextOptions(parallel, seqLen, opts.Threads))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	gopts := opts.Generate
	gopts.Parallel = parallel

	prompts := make([]string, len(items))
	refs := make([][]string, len(items))
	var lossSeqs []LossSequence
	var lossItems []int
	for i, it := range items {
		if len(it.References) == 0 {
			return nil, fmt.Errorf("eval: evaluate: item %d (%q): %w", i, it.ID, ErrNoReferences)
		}
		prompts[i], refs[i] = it.Prompt, it.References
		if it.Loss != nil {
			lossSeqs = append(lossSeqs, *it.Loss)
			lossItems = append(lossItems, i)
		}
	}

	rep := &Report{
		Model: model.Path(),
		Options: ReportSettings{MaxTokens: gopts.MaxTokens, Temperature: gopts.Sampler.Temperature, Seed: gopts.Sampler.Seed,
			Stop: gopts.Stop, Chat: gopts.Chat, Parallel: parallel, RougeStem: opts.Score.RougeStem},
		Examples: make([]ExampleResult, len(items)),
	}
	for i, it := range items {
		rep.Examples[i] = ExampleResult{Index: i, ID: it.ID, Prompt: it.Prompt, References: it.References,
			Outputs: make([]Output, len(systems))}
	}
	progress := func(name, stage string) {
		if opts.Progress != nil {
			opts.Progress(name, stage)
		}
	}
	for si, sys := range systems {
		if err := c.SetAdapters(sys.Adapters); err != nil {
			return nil, fmt.Errorf("eval: evaluate %s: %w", sys.Name, err)
		}
		res := SystemResult{Name: sys.Name}
		for _, a := range sys.Adapters {
			res.Adapters = append(res.Adapters, a.Adapter.Path())
		}
		progress(sys.Name, "generate")
		start := time.Now()
		gens, err := Generate(goctx, c, prompts, gopts)
		if err != nil {
			return nil, fmt.Errorf("eval: evaluate %s: %w", sys.Name, err)
		}
		res.GenerateSeconds = time.Since(start).Seconds()
		preds := make([]string, len(gens))
		ntok := 0
		for i, g := range gens {
			preds[i] = g.Text
			ntok += g.Tokens
		}
		if res.GenerateSeconds > 0 {
			res.TokensPerSec = float64(ntok) / res.GenerateSeconds
		}
		if res.Table, err = Score(preds, refs, opts.Score); err != nil {
			return nil, fmt.Errorf("eval: evaluate %s: %w", sys.Name, err)
		}
		for i, g := range gens {
			sc, err := ScoreExample(g.Text, refs[i], opts.Score)
			if err != nil {
				return nil, fmt.Errorf("eval: evaluate %s: item %d: %w", sys.Name, i, err)
			}
			rep.Examples[i].Outputs[si] = Output{Text: g.Text, Finish: g.Finish, Tokens: g.Tokens, Scores: sc}
		}
		if len(lossSeqs) > 0 {
			progress(sys.Name, "loss")
			losses, err := ReferenceLoss(goctx, c, lossSeqs)
			if err != nil {
				return nil, fmt.Errorf("eval: evaluate %s: %w", sys.Name, err)
			}
			var acc LossAccumulator
			for k, l := range losses {
				acc.Add(l.Sum, float64(l.Tokens))
				if l.Tokens > 0 {
					m := l.Mean()
					rep.Examples[lossItems[k]].Outputs[si].Loss = &m
				}
			}
			if mean, err := acc.Mean(); err == nil {
				res.Loss = &LossSummary{MeanNLL: mean, Perplexity: Perplexity(mean), Tokens: int(acc.Tokens())}
			}
		}
		progress(sys.Name, "done")
		rep.Systems = append(rep.Systems, res)
	}
	if len(systems) > 1 {
		for i := range rep.Examples {
			o := rep.Examples[i].Outputs
			rep.Examples[i].Delta = 100 * (o[1].Scores.F1 - o[0].Scores.F1)
		}
	}
	SortExamples(rep.Examples)
	return rep, nil
}

// SortExamples orders examples by Delta, largest gain first; ties go by the
// ROUGE-L change, then by the original order.
func SortExamples(ex []ExampleResult) {
	rougeDelta := func(e ExampleResult) float64 {
		if len(e.Outputs) < 2 {
			return 0
		}
		return e.Outputs[1].Scores.RougeL.FMeasure - e.Outputs[0].Scores.RougeL.FMeasure
	}
	slices.SortStableFunc(ex, func(a, b ExampleResult) int {
		if c := cmp.Compare(b.Delta, a.Delta); c != 0 {
			return c
		}
		if c := cmp.Compare(rougeDelta(b), rougeDelta(a)); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
}
