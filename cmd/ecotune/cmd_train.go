package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

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
targets), or the folder prepare wrote (its train.jsonl, and its val.jsonl for --val).
Without --val, --val-split of the examples is held out for evaluation.

Checkpoints go to DIR/checkpoint-<step>/ every --save-every steps, at the end and on
Ctrl-C (the newest --keep-checkpoints are kept); DIR/best/adapter.gguf is the adapter of
the lowest validation loss. --resume DIR continues the run in DIR from its newest
checkpoint exactly as if it had never stopped, with the settings it was started with
(flags given again override them; only the length, evaluation, saving and patience
may change). --epochs replaces --steps; --patience stops after that many evaluations
without improvement. Out of memory, the micro-batch is halved and accumulation doubled.

Settings can come from a TOML file (--config; see configs/) and ECOTUNE_* environment
variables (ECOTUNE_LORA_R=32); flags typed on the command line win.

Example:
   ecotune train --config configs/qlora.toml --lora.r 32
   ecotune train --model base.gguf --data stories.txt --out run --lora.r 8 --lora.alpha 16 --lr 1e-3 --steps 200
   ecotune train -m base.gguf --data prepared/train.jsonl --val prepared/val.jsonl --out run --lora.targets all --epochs 3 --patience 3
   ecotune train --resume run`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "TOML run configuration (see configs/); flags override it"},
			&cli.BoolFlag{Name: "print-config", Usage: "print the resolved configuration and exit"},
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "base GGUF model (required unless --resume)"},
			&cli.StringFlag{Name: "model-name", Usage: "a label for the base model, recorded in train_config.json"},
			&cli.StringFlag{Name: "method", Value: trainer.MethodLoRA, Usage: "lora (adapters on a frozen base) or full (every weight of an F32/F16/BF16 model; writes DIR/model.gguf)"},
			&cli.StringFlag{Name: "dtype", Usage: "train on the base quantized to this type first (QLoRA): q4_k, q4_0, iq4_nl, nf4, q8_0, f16, bf16"},
			&cli.StringFlag{Name: "compute-dtype", Usage: "type of the backward pass's products through the frozen weights: a quantized base dequantized to it, an F32 base's weights rounded to it: f32, f16 or bf16 (default on the CPU: bf16 where it multiplies BF16 natively, else f16 on x86 with F16C, else f32)"},
			&cli.StringFlag{Name: "data", Usage: "training data: text file, prepared .jsonl, or the folder `ecotune prepare` wrote (required unless --resume)"},
			&cli.StringFlag{Name: "val", Usage: "validation data (same formats); default: hold out --val-split of --data"},
			&cli.BoolFlag{Name: "train-on-inputs", Usage: "with prepared .jsonl data, the loss covers prompts too, not only answers"},
			&cli.StringFlag{Name: "truncation", Usage: "prepared examples longer than --seq-len: left (cut the start, keep the answer), right or drop (default: the policy in the data's manifest.json, else left)"},
			&cli.Float64Flag{Name: "val-split", Value: 0.1, Usage: "fraction of --data held out when --val is not given"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "output directory (required unless --resume)"},
			&cli.StringFlag{Name: "resume", Usage: "continue the run in this output directory from its newest checkpoint"},
			&cli.IntFlag{Name: "save-every", Value: 50, Usage: "checkpoint every this many steps (0: only at the end and on interruption)"},
			&cli.IntFlag{Name: "keep-checkpoints", Value: trainer.DefaultKeepCheckpoints, Usage: "newest checkpoints kept; -1 all"},
			&cli.IntFlag{Name: "lora.r", Value: trainer.DefaultLoRARank, Usage: "LoRA rank"},
			&cli.Float64Flag{Name: "lora.alpha", Value: trainer.DefaultLoRAAlpha, Usage: "LoRA alpha (scale alpha/r)"},
			&cli.Float64Flag{Name: "lora.dropout", Usage: "dropout on the adapters' input"},
			&cli.StringFlag{Name: "lora.task", Usage: "task name written into the adapter (adapter.lora.task_name)"},
			&cli.BoolFlag{Name: "lora.rslora", Usage: "rank-stabilised scaling alpha/sqrt(r)"},
			&cli.StringFlag{Name: "lora.targets", Value: strings.Join(trainer.DefaultTargets, ","), Usage: "modules to adapt, HF (q_proj) or GGUF (attn_q) names, comma-separated, or all"},
			&cli.Float64Flag{Name: "lr", Value: trainer.DefaultLR, Usage: "peak learning rate"},
			&cli.Float64Flag{Name: "min-lr", Usage: "final learning rate of the cosine/linear decay"},
			&cli.StringFlag{Name: "schedule", Value: trainer.ScheduleCosine, Usage: "learning-rate decay: cosine, linear or constant"},
			&cli.IntFlag{Name: "warmup", Usage: "linear warmup steps"},
			&cli.IntFlag{Name: "schedule-steps", Usage: "length of the learning-rate schedule; default the run's steps (keep the original when extending a resumed run)"},
			&cli.IntFlag{Name: "steps", Value: 100, Usage: "optimizer steps"},
			&cli.IntFlag{Name: "epochs", Usage: "passes over the training data; replaces --steps"},
			&cli.IntFlag{Name: "patience", Usage: "stop after this many evaluations without a lower validation loss; 0 never"},
			&cli.Float64Flag{Name: "min-delta", Usage: "the validation loss must drop by more than this to count as lower"},
			&cli.IntFlag{Name: "batch", Value: trainer.DefaultBatchSize, Usage: "sequences per micro-batch"},
			&cli.IntFlag{Name: "grad-accum", Value: 1, Usage: "micro-batches per optimizer step"},
			&cli.IntFlag{Name: "seq-len", Value: trainer.DefaultSeqLen, Usage: "longest sequence in tokens (text is cut into windows of this size)"},
			&cli.BoolFlag{Name: "packing", Usage: "lay several examples end to end in each sequence of --seq-len, each attending only to itself (less padding; --batch then counts packed sequences)"},
			&cli.Float64Flag{Name: "clip", Value: 1, Usage: "clip the global gradient norm to this; 0 disables"},
			&cli.Float64Flag{Name: "weight-decay", Usage: "AdamW decoupled weight decay"},
			&cli.Float64Flag{Name: "adam-beta1", Value: trainer.DefaultBeta1, Usage: "AdamW decay of the first moment"},
			&cli.Float64Flag{Name: "adam-beta2", Value: trainer.DefaultBeta2, Usage: "AdamW decay of the second moment"},
			&cli.Float64Flag{Name: "adam-eps", Value: trainer.DefaultEps, Usage: "AdamW epsilon, added to the second moment's root"},
			&cli.IntFlag{Name: "eval-every", Value: trainer.DefaultEvalEvery, Usage: "evaluate every this many steps; -1 never"},
			&cli.IntFlag{Name: "eval-batches", Usage: "batches per evaluation; 0 the whole validation set"},
			&cli.BoolFlag{Name: "generic-ops", Usage: "on the CPU, build attention, the adapters and the loss from ggml's generic ops instead of ecotune's fused ops (slower and larger; for comparison)"},
			&cli.StringFlag{Name: "keep-transposed", Value: "auto", Usage: "keep a transposed copy of the frozen F32/F16/BF16 weights for the backward pass, faster LoRA steps for twice those weights' memory: on, off, or auto (on when the model file is at most a quarter of free memory)"},
			&cli.BoolFlag{Name: "gradient-checkpointing", Usage: "recompute each layer's activations in the backward pass: the same gradients for far less memory, about a third more compute"},
			&cli.StringFlag{Name: "checkpoint-keep", Value: trainer.CheckpointKeepNone, Usage: "with --gradient-checkpointing, products stored instead of recomputed: none; ffn (each layer's feed-forward gate and up: half the recomputed products for 2·n_ff floats a token and layer, same gradients); all (every product read again, Q and K as F32 and the others as BF16: gradients within BF16's rounding)"},
			&cli.Uint64Flag{Name: "seed", Value: 42, Usage: "seed of initialisation, shuffling and dropout"},
			&cli.IntFlag{Name: "threads", Usage: "CPU threads (default: all)"},
			&cli.BoolFlag{Name: "gpu", Usage: "train on GPU 0 (CUDA builds)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		},
		Action: runTrain,
	}
}

// runSettings is DIR/train_config.json: everything --resume needs to restart a run.
type runSettings struct {
	Model string `json:"model"`
	Name  string `json:"model_name,omitempty"`
	Dtype string `json:"dtype,omitempty"`
	// ComputeDtype is --compute-dtype as the first run resolved it, so that a resumed
	// run computes as it did.
	ComputeDtype string `json:"compute_dtype,omitempty"`
	// TrainOnInputs makes every token of prepared examples a target (prompts too).
	TrainOnInputs bool `json:"train_on_inputs,omitempty"`
	// Truncation is what happens to prepared examples longer than the sequence length;
	// "" takes the prepared data's manifest's policy, else left.
	Truncation data.Truncation `json:"truncation,omitempty"`
	Data       string          `json:"data"`
	Val        string          `json:"val"`
	ValSplit   float64         `json:"val_split"`
	Config     trainer.Config  `json:"config"`
}

func runTrain(c *cli.Context) (err error) {
	if c.NArg() > 0 {
		return usagef("train takes no arguments (got %q)", c.Args().First())
	}
	if err := applyTrainConfig(c); err != nil {
		return err
	}
	if c.Bool("print-config") {
		printTrainConfig(c, c.App.Writer)
		return nil
	}
	var rs runSettings
	out, resume := c.String("out"), c.String("resume")
	settingsPath := ""
	if resume != "" {
		if out != "" && filepath.Clean(out) != filepath.Clean(resume) {
			return usagef("--resume %s continues the run in that directory; leave out --out (it is %s)", resume, out)
		}
		out = resume
		settingsPath = filepath.Join(out, "train_config.json")
		raw, err := os.ReadFile(settingsPath)
		if err != nil {
			return fmt.Errorf("--resume %s: %w (it must be the --out directory of an ecotune train run)", out, err)
		}
		if err := json.Unmarshal(raw, &rs); err != nil {
			return fmt.Errorf("--resume: %s: %w", settingsPath, err)
		}
	}
	// A fresh run takes every flag; a resumed one only those given again.
	given := func(name string) bool { return resume == "" || c.IsSet(name) }
	cfg := &rs.Config
	for _, f := range []struct {
		name string
		set  func()
	}{
		{"model", func() { rs.Model = c.String("model") }},
		{"model-name", func() { rs.Name = c.String("model-name") }},
		{"dtype", func() { rs.Dtype = c.String("dtype") }},
		{"compute-dtype", func() { rs.ComputeDtype = c.String("compute-dtype") }},
		{"data", func() { rs.Data = c.String("data") }},
		{"val", func() { rs.Val = c.String("val") }},
		{"val-split", func() { rs.ValSplit = c.Float64("val-split") }},
		{"train-on-inputs", func() { rs.TrainOnInputs = c.Bool("train-on-inputs") }},
		{"truncation", func() { rs.Truncation = data.Truncation(c.String("truncation")) }},
		{"method", func() { cfg.Method = c.String("method") }},
		{"lora.r", func() { cfg.LoRA.Rank = c.Int("lora.r") }},
		{"lora.alpha", func() { cfg.LoRA.Alpha = float32(c.Float64("lora.alpha")) }},
		{"lora.dropout", func() { cfg.LoRA.Dropout = float32(c.Float64("lora.dropout")) }},
		{"lora.rslora", func() { cfg.LoRA.RSLoRA = c.Bool("lora.rslora") }},
		{"lora.task", func() { cfg.LoRA.TaskName = c.String("lora.task") }},
		{"lora.targets", func() { cfg.LoRA.Targets = strings.Split(c.String("lora.targets"), ",") }},
		{"clip", func() { cfg.Optimizer.ClipNorm = float32(c.Float64("clip")) }},
		{"weight-decay", func() { cfg.Optimizer.WeightDecay = float32(c.Float64("weight-decay")) }},
		{"adam-beta1", func() { cfg.Optimizer.Beta1 = float32(c.Float64("adam-beta1")) }},
		{"adam-beta2", func() { cfg.Optimizer.Beta2 = float32(c.Float64("adam-beta2")) }},
		{"adam-eps", func() { cfg.Optimizer.Eps = float32(c.Float64("adam-eps")) }},
		{"schedule", func() { cfg.Schedule.Kind = c.String("schedule") }},
		{"lr", func() { cfg.Schedule.LR = c.Float64("lr") }},
		{"min-lr", func() { cfg.Schedule.MinLR = c.Float64("min-lr") }},
		{"warmup", func() { cfg.Schedule.Warmup = c.Int("warmup") }},
		{"schedule-steps", func() { cfg.Schedule.Steps = c.Int("schedule-steps") }},
		{"steps", func() { cfg.Steps = c.Int("steps") }},
		{"epochs", func() { cfg.Epochs = c.Int("epochs") }},
		{"batch", func() { cfg.BatchSize = c.Int("batch") }},
		{"grad-accum", func() { cfg.GradAccum = c.Int("grad-accum") }},
		{"seq-len", func() { cfg.SeqLen = c.Int("seq-len") }},
		{"packing", func() { cfg.Packing = c.Bool("packing") }},
		{"eval-every", func() { cfg.EvalEvery = c.Int("eval-every") }},
		{"eval-batches", func() { cfg.EvalBatches = c.Int("eval-batches") }},
		{"seed", func() { cfg.Seed, cfg.LoRA.Seed = c.Uint64("seed"), c.Uint64("seed") }},
		{"gradient-checkpointing", func() { cfg.GradientCheckpointing = c.Bool("gradient-checkpointing") }},
		{"checkpoint-keep", func() { cfg.CheckpointKeep = c.String("checkpoint-keep") }},
		{"patience", func() { cfg.Patience = c.Int("patience") }},
		{"min-delta", func() { cfg.MinDelta = c.Float64("min-delta") }},
		{"save-every", func() { cfg.SaveEvery = c.Int("save-every") }},
		{"keep-checkpoints", func() { cfg.KeepCheckpoints = c.Int("keep-checkpoints") }},
	} {
		if given(f.name) {
			f.set()
		}
	}
	if rs.Model == "" || rs.Data == "" || out == "" {
		return usagef("--model, --data and --out are required (or --resume DIR)")
	}
	model, err := modelPath(c.Context, rs.Model, c.App.ErrWriter)
	if err != nil {
		return err
	}
	rs.Model = model
	if err := preparedFolder(&rs, c.IsSet("val-split")); err != nil {
		return err
	}
	if cfg.LoRA.Rank < 1 || cfg.BatchSize < 1 || cfg.GradAccum < 1 || cfg.SeqLen < 2 || (cfg.Steps < 1 && cfg.Epochs < 1) {
		return usagef("--lora.r, --steps (or --epochs), --batch and --grad-accum must be ≥ 1 and --seq-len ≥ 2")
	}
	for _, name := range []string{"adam-beta1", "adam-beta2", "adam-eps"} {
		// The trainer reads 0 as its default, so a typed 0 must not pass silently.
		if v := c.Float64(name); given(name) && !(v > 0 && (v < 1 || name == "adam-eps")) {
			return usagef("--%s is %g: the betas must be in (0, 1) and epsilon positive", name, v)
		}
	}
	if cfg.SaveEvery < 0 || cfg.Patience < 0 || cfg.Epochs < 0 {
		return usagef("--save-every, --patience and --epochs must not be negative")
	}
	if rs.ComputeDtype != "" {
		if _, err := trainer.ParseComputeType(rs.ComputeDtype); err != nil {
			return usagef("--compute-dtype: %v", err)
		}
	}
	sched := cfg.Schedule
	if sched.Steps == 0 {
		// The schedule's length defaults to the run's, which --epochs fixes only once
		// the data is read; check the rest now.
		sched.Steps = max(cfg.Steps, sched.Warmup, 1)
	}
	if err := sched.Validate(); err != nil {
		return usagef("%v", err)
	}
	// A run refused before its first step leaves no output directory it created: a
	// later command with the same --out must not take it for an earlier run.
	_, statErr := os.Stat(out)
	created, started := errors.Is(statErr, os.ErrNotExist), false
	defer func() {
		if err != nil && created && !started {
			os.RemoveAll(out)
		}
	}()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("creating the output directory: %w", err)
	}
	if resume == "" {
		if dir, err := trainer.LatestCheckpoint(out); err == nil {
			return usagef("%s holds checkpoints of an earlier run (%s): continue it with --resume %s, or choose another --out", out, filepath.Base(dir), out)
		}
	}

	// The base model's own tokenizer (libllama, vocabulary only), once Go has checked
	// what libllama would otherwise assert on.
	if err := checkModelFile(rs.Model, trainer.CheckAll, false); err != nil {
		return err
	}
	vocab, err := bindings.LoadModel(rs.Model, bindings.ModelOptions{VocabOnly: true})
	if err != nil {
		return err
	}
	defer vocab.Close()
	tok := tokenizer{vocab}
	trainSet, err := loadTrainData(rs.Data, tok, cfg.SeqLen, rs.TrainOnInputs, rs.Truncation, c.App.ErrWriter)
	if err != nil {
		return err
	}
	var valSet trainer.Dataset
	if rs.Val != "" {
		if valSet, err = loadTrainData(rs.Val, tok, cfg.SeqLen, rs.TrainOnInputs, rs.Truncation, c.App.ErrWriter); err != nil {
			return err
		}
	} else if rs.ValSplit > 0 {
		trainSet, valSet = trainer.Split(trainSet, rs.ValSplit, cfg.Seed)
	}
	if trainSet.Len() == 0 {
		return fmt.Errorf("%s gives no training examples", rs.Data)
	}
	if eos := vocab.EOS(); eos >= 0 {
		cfg.Pad = eos
	}

	basePath, err := baseForDtype(c.Context, rs.Model, rs.Dtype, out, c.App.ErrWriter)
	if err != nil {
		return err
	}
	if cfg.Method != trainer.MethodLoRA && cfg.Method != trainer.MethodFull {
		return usagef("--method %q: want %s or %s", cfg.Method, trainer.MethodLoRA, trainer.MethodFull)
	}
	switch k := cfg.CheckpointKeep; k {
	case "", trainer.CheckpointKeepNone:
	case trainer.CheckpointKeepFFN, trainer.CheckpointKeepAll:
		if !cfg.GradientCheckpointing {
			return usagef("--checkpoint-keep %s chooses what gradient checkpointing keeps: add --gradient-checkpointing", k)
		}
	default:
		return usagef("--checkpoint-keep %q: want %s, %s or %s", k, trainer.CheckpointKeepNone, trainer.CheckpointKeepFFN, trainer.CheckpointKeepAll)
	}
	keepT, err := keepTransposed(c.String("keep-transposed"), basePath, c.Bool("gpu"))
	if err != nil {
		return err
	}
	m, err := trainer.LoadModel(basePath, trainer.ModelOptions{Threads: c.Int("threads"), GPU: c.Bool("gpu"),
		Trainable: cfg.Method == trainer.MethodFull, KeepTransposed: keepT, GenericOps: c.Bool("generic-ops"),
		ComputeType: rs.ComputeDtype})
	if err != nil {
		return err
	}
	defer m.Close()
	rs.ComputeDtype = m.ComputeType().String()
	// A run killed before its first checkpoint has its settings but no step to go on
	// from: --resume starts it over instead of refusing.
	fromCheckpoint := resume != ""
	if _, err := trainer.LatestCheckpoint(out); fromCheckpoint && errors.Is(err, trainer.ErrNoCheckpoint) {
		fromCheckpoint = false
		fmt.Fprintf(c.App.ErrWriter, "ecotune: %s has no checkpoint yet (the run stopped before its first); starting it over\n", out)
	}
	metrics := filepath.Join(out, "metrics.jsonl")
	if !fromCheckpoint {
		if err := os.Remove(metrics); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	cfg.MetricsPath, cfg.RunDir, cfg.Resume = metrics, out, fromCheckpoint
	settingsPath = filepath.Join(out, "train_config.json")
	if resume == "" {
		if err := writeJSON(settingsPath, rs); err != nil {
			return err
		}
	}

	w := c.App.ErrWriter
	cfg.Logger = slog.New(slog.NewTextHandler(w, nil))
	what := fmt.Sprintf("LoRA r=%d on %s", cfg.LoRA.Rank, strings.Join(cfg.LoRA.Targets, ","))
	if cfg.Method == trainer.MethodFull {
		what = "full fine-tuning of every weight"
	}
	fmt.Fprintf(w, "ecotune: %s (%s, %d layers), %d training / %d validation examples, %s\n",
		rs.Model, m.HP.Arch, m.HP.Layers, trainSet.Len(), dsLen(valSet), what)
	var bar *progressbar.ProgressBar
	if !c.Bool("quiet") {
		bar = progressbar.NewOptions(max(cfg.Steps, 1), progressbar.OptionSetWriter(w), progressbar.OptionShowCount(),
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
	first := true
	var settingsErr error
	cfg.OnStep = func(s trainer.StepInfo) {
		if first && resume != "" {
			// Trainer accepted the changed settings: they are the run's from now on.
			settingsErr = writeJSON(settingsPath, rs)
		}
		first = false
		if bar == nil {
			return
		}
		if bar.GetMax() != s.Steps {
			bar.ChangeMax(s.Steps) // --epochs: the step count is known now
		}
		bar.Describe(fmt.Sprintf("loss %.4f%s lr %.2e %.0f tok/s", s.Loss, lastEval, s.LR, s.TokensPerSec))
		_ = bar.Set(s.Step)
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	started = true
	res, err := trainer.Train(ctx, m, *cfg, trainSet, valSet)
	if bar != nil {
		if err == nil {
			_ = bar.Finish()
		} else {
			_ = bar.Exit() // a bar at 100% would say the run finished
			fmt.Fprintln(w)
		}
	}
	if err != nil {
		if errors.Is(err, context.Canceled) && res.Checkpoint != "" {
			return fmt.Errorf("%w (saved %s; continue with ecotune train --resume %s)", err, res.Checkpoint, out)
		}
		return err
	}
	defer res.LoRA.Close()
	if settingsErr != nil {
		return settingsErr
	}
	adapter := filepath.Join(out, "adapter.gguf")
	if cfg.Method == trainer.MethodFull {
		adapter = filepath.Join(out, "model.gguf")
		if err := m.WriteModel(adapter); err != nil {
			return err
		}
	} else if err := res.LoRA.WriteAdapter(adapter); err != nil {
		return err
	}
	if res.ResumedFrom > 0 {
		fmt.Fprintf(w, "ecotune: resumed at step %d; ", res.ResumedFrom)
	} else {
		fmt.Fprint(w, "ecotune: ")
	}
	fmt.Fprintf(w, "%d steps in %s (%.0f tokens/s), final train loss %.4f", res.Steps, res.Elapsed.Round(time.Millisecond), res.TokensPerSec, res.TrainLoss)
	if n := len(res.Evals); n > 0 {
		fmt.Fprintf(w, ", validation loss %.4f → %.4f (best %.4f at step %d)", res.Evals[0].Loss, res.Evals[n-1].Loss, res.Best.Loss, res.Best.Step)
	}
	if res.EarlyStopped {
		fmt.Fprintf(w, "; stopped early (patience %d)", cfg.Patience)
	}
	if res.MicroBatch < cfg.BatchSize {
		fmt.Fprintf(w, "; out of memory: micro-batch reduced to %d", res.MicroBatch)
	}
	if peak := peakRSS(); peak > 0 {
		fmt.Fprintf(w, "; peak memory %s", mib(peak))
	}
	fmt.Fprintf(w, "\nwrote %s, %s and %s\n", adapter, metrics, res.Checkpoint)
	writeLossChart(w, out) // loss.svg beside metrics.jsonl (cmd_eval.go)
	return nil
}

// preparedFolder turns --data DIR, the folder `ecotune prepare` wrote, into its train
// split and, unless --val or --val-split says otherwise, its validation split.
func preparedFolder(rs *runSettings, valSplitSet bool) error {
	fi, err := os.Stat(rs.Data)
	if err != nil || !fi.IsDir() {
		return nil // a file, or an error that reading it reports
	}
	if _, err := os.Stat(filepath.Join(rs.Data, data.ManifestName)); err != nil {
		return fmt.Errorf("--data %s is a folder without %s: give a text file, a prepared .jsonl file, or the folder `ecotune prepare` wrote", rs.Data, data.ManifestName)
	}
	train := filepath.Join(rs.Data, "train.jsonl")
	if _, err := os.Stat(train); err != nil {
		return fmt.Errorf("--data %s holds no train split: %w", rs.Data, err)
	}
	if val := filepath.Join(rs.Data, "val.jsonl"); rs.Val == "" && !valSplitSet {
		if fi, err := os.Stat(val); err == nil && fi.Size() > 0 {
			rs.Val = val
		}
	}
	rs.Data = train
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

// loadTrainData reads a prepared .jsonl file (answer tokens are targets; every token
// with allTargets, to continue pre-training on the whole text) or plain text
// (windows of seqLen tokens, every token a target). trunc says what happens to a
// prepared example longer than seqLen; "" takes the policy prepare recorded in the
// manifest beside the file, else left. Skipped examples are counted on w.
func loadTrainData(path string, tok tokenizer, seqLen int, allTargets bool, trunc data.Truncation, w io.Writer) (trainer.Dataset, error) {
	if strings.HasSuffix(path, ".jsonl") {
		prepared, err := data.LoadPrepared(path)
		if err != nil {
			return nil, err
		}
		if trunc, err = trainTruncation(path, trunc); err != nil {
			return nil, err
		}
		var out trainer.Examples
		skipped, tooLong := 0, 0
		var firstErr error
		for i := range prepared {
			enc, err := prepared[i].Encode(tok, data.EncodeOptions{MaxLen: seqLen + 1, Truncation: trunc, AddBOS: true})
			if errors.Is(err, data.ErrTooLong) {
				tooLong++
				continue
			}
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("line %d: %w", i+1, err)
				}
				skipped++
				continue
			}
			if allTargets {
				for i := range enc.Mask {
					enc.Mask[i] = true
				}
			}
			out = append(out, trainer.Example{IDs: enc.IDs, Mask: enc.Mask})
		}
		if tooLong > 0 {
			fmt.Fprintf(w, "train: %s: %d examples longer than %d tokens skipped (--truncation drop)\n", path, tooLong, seqLen+1)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%s: no usable examples (%d could not be encoded, %d too long; first: %v)", path, skipped, tooLong, firstErr)
		}
		return out, nil
	}
	if ext := dataFormatExt(path); ext != "" {
		return nil, fmt.Errorf("%s: train reads plain text or prepared .jsonl, not %s files; run `ecotune prepare %s -o DIR` and train on DIR", path, ext, path)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(text) {
		return nil, fmt.Errorf("%s: byte %d is not UTF-8 text (is it a binary file?)", path, firstInvalidUTF8(text))
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
	return writeFileAtomic(path, append(b, '\n'))
}

// trainTruncation resolves the truncation policy for the prepared file at path: the
// flag's when given, else the one `ecotune prepare --truncation` recorded in the
// manifest beside the file (left or right; drop there only governed --max-tokens), else
// left, which keeps the answer.
func trainTruncation(path string, flag data.Truncation) (data.Truncation, error) {
	if flag != "" {
		t, err := data.ParseTruncation(string(flag))
		if err != nil {
			return "", fmt.Errorf("--truncation: %w", err)
		}
		return t, nil
	}
	if m, err := data.LoadManifest(filepath.Dir(path)); err == nil {
		switch t := m.Options.Truncation; t {
		case data.TruncateLeft, data.TruncateRight:
			return t, nil
		}
	}
	return data.TruncateLeft, nil
}
