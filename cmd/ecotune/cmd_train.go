package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/data"
	"github.com/ecotune/ecotune/trainer"
)

func trainCommand() *cli.Command {
	return &cli.Command{
		Name:      "train",
		Usage:     "fine-tune a LoRA adapter on a GGUF model",
		ArgsUsage: " ",
		Description: `Trains a LoRA adapter on a GGUF base model (F32, F16, BF16 or quantized: QLoRA) and
writes DIR/adapter.gguf in llama.cpp's adapter format (use it with llama.cpp's --lora or
ecotune generate --lora), DIR/metrics.jsonl (one JSON record per step and evaluation)
and DIR/train_config.json.

--data is plain text (tokenized and cut into windows of --seq-len tokens, every token
a target) or a prepared .jsonl file from ` + "`ecotune prepare`" + ` (only answer tokens are
targets). Without --val, --val-split of the examples is held out for evaluation.

Example:
   ecotune train --model base.gguf --data stories.txt --out run --lora.r 8 --lora.alpha 16 --lr 1e-3 --steps 200
   ecotune train -m base.gguf --data prepared/train.jsonl --val prepared/val.jsonl --out run --lora.targets all`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "base GGUF model", Required: true},
			&cli.StringFlag{Name: "data", Usage: "training data: text file or prepared .jsonl", Required: true},
			&cli.StringFlag{Name: "val", Usage: "validation data (same formats); default: hold out --val-split of --data"},
			&cli.Float64Flag{Name: "val-split", Value: 0.1, Usage: "fraction of --data held out when --val is not given"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "output directory", Required: true},
			&cli.IntFlag{Name: "lora.r", Value: trainer.DefaultLoRARank, Usage: "LoRA rank"},
			&cli.Float64Flag{Name: "lora.alpha", Value: trainer.DefaultLoRAAlpha, Usage: "LoRA alpha (scale alpha/r)"},
			&cli.Float64Flag{Name: "lora.dropout", Usage: "dropout on the adapters' input"},
			&cli.BoolFlag{Name: "lora.rslora", Usage: "rank-stabilised scaling alpha/sqrt(r)"},
			&cli.StringFlag{Name: "lora.targets", Value: strings.Join(trainer.DefaultTargets, ","), Usage: "modules to adapt, HF (q_proj) or GGUF (attn_q) names, comma-separated, or all"},
			&cli.Float64Flag{Name: "lr", Value: trainer.DefaultLR, Usage: "peak learning rate"},
			&cli.Float64Flag{Name: "min-lr", Usage: "final learning rate of the cosine/linear decay"},
			&cli.StringFlag{Name: "schedule", Value: trainer.ScheduleCosine, Usage: "learning-rate decay: cosine, linear or constant"},
			&cli.IntFlag{Name: "warmup", Usage: "linear warmup steps"},
			&cli.IntFlag{Name: "steps", Value: 100, Usage: "optimizer steps"},
			&cli.IntFlag{Name: "batch", Value: trainer.DefaultBatchSize, Usage: "sequences per micro-batch"},
			&cli.IntFlag{Name: "grad-accum", Value: 1, Usage: "micro-batches per optimizer step"},
			&cli.IntFlag{Name: "seq-len", Value: trainer.DefaultSeqLen, Usage: "longest sequence in tokens (text is cut into windows of this size)"},
			&cli.Float64Flag{Name: "clip", Value: 1, Usage: "clip the global gradient norm to this; 0 disables"},
			&cli.Float64Flag{Name: "weight-decay", Usage: "AdamW decoupled weight decay"},
			&cli.IntFlag{Name: "eval-every", Value: trainer.DefaultEvalEvery, Usage: "evaluate every this many steps; -1 never"},
			&cli.IntFlag{Name: "eval-batches", Usage: "batches per evaluation; 0 the whole validation set"},
			&cli.Uint64Flag{Name: "seed", Value: 42, Usage: "seed of initialisation, shuffling and dropout"},
			&cli.IntFlag{Name: "threads", Usage: "CPU threads (default: all)"},
			&cli.BoolFlag{Name: "gpu", Usage: "train on GPU 0 (CUDA builds)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		},
		Action: runTrain,
	}
}

func runTrain(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("train takes no arguments (got %q)", c.Args().First())
	}
	cfg := trainer.Config{
		LoRA: trainer.LoRAConfig{
			Rank: c.Int("lora.r"), Alpha: float32(c.Float64("lora.alpha")), Dropout: float32(c.Float64("lora.dropout")),
			RSLoRA: c.Bool("lora.rslora"), Targets: strings.Split(c.String("lora.targets"), ","), Seed: c.Uint64("seed"),
		},
		Optimizer: trainer.OptimizerConfig{ClipNorm: float32(c.Float64("clip")), WeightDecay: float32(c.Float64("weight-decay"))},
		Schedule: trainer.Schedule{Kind: c.String("schedule"), LR: c.Float64("lr"), MinLR: c.Float64("min-lr"),
			Warmup: c.Int("warmup"), Steps: c.Int("steps")},
		Steps: c.Int("steps"), BatchSize: c.Int("batch"), GradAccum: c.Int("grad-accum"), SeqLen: c.Int("seq-len"),
		EvalEvery: c.Int("eval-every"), EvalBatches: c.Int("eval-batches"), Seed: c.Uint64("seed"),
	}
	if cfg.LoRA.Rank < 1 || cfg.Steps < 1 || cfg.BatchSize < 1 || cfg.GradAccum < 1 || cfg.SeqLen < 2 {
		return usagef("--lora.r, --steps, --batch and --grad-accum must be ≥ 1 and --seq-len ≥ 2")
	}
	if err := cfg.Schedule.Validate(); err != nil {
		return usagef("%v", err)
	}
	out := c.String("out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("creating the output directory: %w", err)
	}

	// The base model's own tokenizer (libllama, vocabulary only).
	vocab, err := bindings.LoadModel(c.String("model"), bindings.ModelOptions{VocabOnly: true})
	if err != nil {
		return err
	}
	defer vocab.Close()
	tok := tokenizer{vocab}
	trainSet, err := loadTrainData(c.String("data"), tok, cfg.SeqLen)
	if err != nil {
		return err
	}
	var valSet trainer.Dataset
	if v := c.String("val"); v != "" {
		if valSet, err = loadTrainData(v, tok, cfg.SeqLen); err != nil {
			return err
		}
	} else if f := c.Float64("val-split"); f > 0 {
		trainSet, valSet = trainer.Split(trainSet, f, cfg.Seed)
	}
	if trainSet.Len() == 0 {
		return fmt.Errorf("%s gives no training examples", c.String("data"))
	}
	if eos := vocab.EOS(); eos >= 0 {
		cfg.Pad = eos
	}

	m, err := trainer.LoadModel(c.String("model"), trainer.ModelOptions{Threads: c.Int("threads"), GPU: c.Bool("gpu")})
	if err != nil {
		return err
	}
	defer m.Close()
	metrics := filepath.Join(out, "metrics.jsonl")
	if err := os.Remove(metrics); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	cfg.MetricsPath = metrics
	if err := writeJSON(filepath.Join(out, "train_config.json"), map[string]any{
		"model": c.String("model"), "data": c.String("data"), "val": c.String("val"), "config": cfg}); err != nil {
		return err
	}

	w := c.App.ErrWriter
	fmt.Fprintf(w, "ecotune: %s (%s, %d layers), %d training / %d validation examples, LoRA r=%d on %s\n",
		c.String("model"), m.HP.Arch, m.HP.Layers, trainSet.Len(), dsLen(valSet), cfg.LoRA.Rank, c.String("lora.targets"))
	var bar *progressbar.ProgressBar
	if !c.Bool("quiet") {
		bar = progressbar.NewOptions(cfg.Steps, progressbar.OptionSetWriter(w), progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionSetElapsedTime(true), progressbar.OptionSetWidth(20),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetItsString("step"),
			progressbar.OptionSetDescription("train"), progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
	}
	var lastEval string
	cfg.OnEval = func(step int, loss float64) {
		lastEval = fmt.Sprintf(" val %.4f", loss)
		if bar == nil {
			fmt.Fprintf(w, "step %d: validation loss %.4f\n", step, loss)
		}
	}
	cfg.OnStep = func(s trainer.StepInfo) {
		if bar == nil {
			return
		}
		bar.Describe(fmt.Sprintf("loss %.4f%s lr %.2e %.0f tok/s", s.Loss, lastEval, s.LR, s.TokensPerSec))
		_ = bar.Set(s.Step)
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := trainer.Train(ctx, m, cfg, trainSet, valSet)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	defer res.LoRA.Close()
	adapter := filepath.Join(out, "adapter.gguf")
	if err := res.LoRA.WriteAdapter(adapter); err != nil {
		return err
	}
	fmt.Fprintf(w, "ecotune: %d steps in %s (%.0f tokens/s), final train loss %.4f", res.Steps, res.Elapsed.Round(time.Millisecond), res.TokensPerSec, res.TrainLoss)
	if n := len(res.Evals); n > 0 {
		fmt.Fprintf(w, ", validation loss %.4f → %.4f", res.Evals[0].Loss, res.Evals[n-1].Loss)
	}
	fmt.Fprintf(w, "\nwrote %s and %s\n", adapter, metrics)
	writeLossChart(w, out) // loss.svg beside metrics.jsonl (cmd_eval.go)
	return nil
}

func dsLen(d trainer.Dataset) int {
	if d == nil {
		return 0
	}
	return d.Len()
}

// tokenizer adapts a libllama vocabulary to data.Tokenizer.
type tokenizer struct{ m *bindings.Model }

func (t tokenizer) Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	return t.m.Tokenize(text, addSpecial, parseSpecial)
}

func (t tokenizer) Detokenize(ids []int32) (string, error) { return t.m.Detokenize(ids, false, false) }

// loadTrainData reads a prepared .jsonl file (answer tokens are targets) or plain text
// (windows of seqLen tokens, every token a target).
func loadTrainData(path string, tok tokenizer, seqLen int) (trainer.Dataset, error) {
	if strings.HasSuffix(path, ".jsonl") {
		prepared, err := data.LoadPrepared(path)
		if err != nil {
			return nil, err
		}
		var out trainer.Examples
		skipped := 0
		for i := range prepared {
			enc, err := prepared[i].Encode(tok, data.EncodeOptions{MaxLen: seqLen + 1, Truncation: data.TruncateLeft, AddBOS: true})
			if err != nil {
				skipped++
				continue
			}
			out = append(out, trainer.Example{IDs: enc.IDs, Mask: enc.Mask})
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%s: no usable examples (%d could not be encoded)", path, skipped)
		}
		return out, nil
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ids, err := tok.Tokenize(string(text), true, false)
	if err != nil {
		return nil, fmt.Errorf("tokenizing %s: %w", path, err)
	}
	if len(ids) < 2 {
		return nil, fmt.Errorf("%s holds fewer than two tokens", path)
	}
	return trainer.Windows(ids, seqLen, seqLen), nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
