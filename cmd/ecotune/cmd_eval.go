package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/data"
	"github.com/ecotune/ecotune/eval"
	"github.com/ecotune/ecotune/trainer"
)

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:      "eval",
		Usage:     "evaluate a base model and its adapters on a test set, or score outputs",
		ArgsUsage: " ",
		Description: `Answers every prompt of --data with the base model and with each --adapter (greedy
by default, all prompts of a model decoded together as parallel sequences), scores the
answers against the references (exact match, token F1, BLEU, ROUGE-1/2/L), computes the
loss and perplexity of the references under each model (answer tokens only, as training
masks them), and writes DIR/report.json, DIR/report.md and DIR/report.html (one file,
no network needed) with the metric table, the answers side by side (largest gains and
regressions of the first adapter first) and, with --metrics, the training curves.

--data is a prepared test split from ` + "`ecotune prepare`" + ` (test.jsonl: prompt and
answer come from the template's segments) or JSONL lines {"id", "prompt", "reference"}
(or "references": [...]). See docs/eval.md.

Example:
   ecotune eval --model base.gguf --adapter run/adapter.gguf --data prepared/test.jsonl --metrics run/metrics.jsonl -o report
   ecotune eval -m base.gguf --adapter a.gguf --adapter b.gguf:0.5 --data qa.jsonl --chat --max-tokens 64 -o out`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "base GGUF model"},
			&cli.StringSliceFlag{Name: "adapter", Aliases: []string{"lora"}, Usage: "LoRA adapter GGUF, optionally FILE:SCALE (repeatable; each is evaluated on its own)"},
			&cli.StringFlag{Name: "data", Usage: "test set: prepared test.jsonl, or JSONL with prompt and reference"},
			&cli.StringFlag{Name: "metrics", Usage: "metrics.jsonl of the training run, for the training curves"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "output directory"},
			&cli.IntFlag{Name: "max-tokens", Aliases: []string{"n"}, Value: 128, Usage: "most tokens per answer"},
			&cli.Float64Flag{Name: "temp", Usage: "temperature; 0 is greedy"},
			&cli.UintFlag{Name: "seed", Value: 42, Usage: "sampling seed (with --temp > 0)"},
			&cli.StringSliceFlag{Name: "stop", Usage: "stop string (repeatable)"},
			&cli.BoolFlag{Name: "chat", Usage: "wrap each prompt of a prompt/reference file in the model's chat template"},
			&cli.IntFlag{Name: "parallel", Value: 8, Usage: "prompts decoded together"},
			&cli.IntFlag{Name: "seq-len", Value: 512, Usage: "most tokens per sequence (prompt + answer); llama.cpp rounds --parallel × --seq-len up to a multiple of 256"},
			&cli.IntFlag{Name: "limit", Usage: "evaluate only the first N examples; 0 all"},
			&cli.BoolFlag{Name: "stem", Usage: "Porter-stem tokens for ROUGE"},
			&cli.IntFlag{Name: "threads", Usage: "CPU threads (default: all)"},
			&cli.IntFlag{Name: "gpu-layers", Value: -1, Usage: "layers to offload to a GPU (CUDA builds); -1 all"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress messages"},
		},
		Action: runEvalReport,
		Subcommands: []*cli.Command{
			evalScoreCommand(),
		},
	}
}

func runEvalReport(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("eval takes no arguments (got %q); did you mean `ecotune eval score`?", c.Args().First())
	}
	for _, f := range []string{"model", "data", "out"} {
		if c.String(f) == "" {
			return usagef("eval needs --model, --data and --out (missing --%s); to score existing predictions use `ecotune eval score`", f)
		}
	}
	if c.Int("max-tokens") < 0 || c.Int("parallel") < 1 || c.Int("seq-len") < 2 || c.Int("limit") < 0 {
		return usagef("--max-tokens must be ≥ 0, --parallel ≥ 1, --seq-len ≥ 2 and --limit ≥ 0")
	}
	modelFile, err := modelPath(c.Context, c.String("model"), c.App.ErrWriter)
	if err != nil {
		return err
	}
	if err := checkModelFile(modelFile, trainer.CheckAll, true); err != nil {
		return err
	}
	model, err := bindings.LoadModel(modelFile, bindings.ModelOptions{GPULayers: c.Int("gpu-layers")})
	if err != nil {
		return err
	}
	defer model.Close()
	items, skipped, err := loadEvalItems(c.String("data"), model, c.Int("seq-len"), c.Bool("chat"))
	if err != nil {
		return err
	}
	if n := c.Int("limit"); n > 0 && n < len(items) {
		items = items[:n]
	}
	var training *eval.TrainingLog
	if p := c.String("metrics"); p != "" {
		if training, err = eval.ReadTrainingLog(p); err != nil {
			return err
		}
	}

	systems := []eval.System{{Name: "base"}}
	for _, spec := range c.StringSlice("adapter") {
		path, scale, err := parseAdapterSpec(spec)
		if err != nil {
			return usageError{err}
		}
		a, err := bindings.LoadAdapter(model, path)
		if err != nil {
			return err
		}
		defer a.Close()
		name := strings.TrimSuffix(path, filepath.Ext(path))
		if scale != 1 {
			name += fmt.Sprintf(" ×%g", scale)
		}
		systems = append(systems, eval.System{Name: name, Adapters: []bindings.AdapterScale{{Adapter: a, Scale: scale}}})
	}

	w := c.App.ErrWriter
	quiet := c.Bool("quiet")
	if !quiet {
		fmt.Fprintf(w, "ecotune: %d examples from %s", len(items), c.String("data"))
		if skipped > 0 {
			fmt.Fprintf(w, " (%d multi-turn or text examples skipped: they have no single answer)", skipped)
		}
		fmt.Fprintf(w, ", %d model(s)\n", len(systems))
	}
	opts := eval.EvaluateOptions{
		Generate: eval.GenerateOptions{
			MaxTokens: c.Int("max-tokens"), Stop: c.StringSlice("stop"), Chat: c.Bool("chat"), Parallel: c.Int("parallel"),
			Sampler: bindings.SamplerOptions{Temperature: float32(c.Float64("temp")), Seed: uint32(c.Uint("seed"))},
		},
		Score:   eval.ScoreOptions{RougeStem: c.Bool("stem")},
		SeqLen:  c.Int("seq-len"),
		Threads: c.Int("threads"),
	}
	if opts.Generate.Sampler.Temperature > 0 {
		// The usual sampling chain, as ecotune generate's defaults.
		opts.Generate.Sampler.TopK, opts.Generate.Sampler.TopP, opts.Generate.Sampler.MinP = 40, 0.95, 0.05
	}
	if !quiet {
		opts.Progress = func(system, stage string) {
			switch stage {
			case "generate":
				fmt.Fprintf(w, "  %s: generating %d answers\n", system, len(items))
			case "loss":
				fmt.Fprintf(w, "  %s: scoring the references\n", system)
			}
		}
	}
	goctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := eval.Evaluate(goctx, model, systems, items, opts)
	if errors.Is(err, bindings.ErrKVCacheFull) {
		return fmt.Errorf("%w (raise --seq-len, the tokens a prompt and its answer may hold)", err)
	}
	if err != nil {
		return err
	}
	rep.Data, rep.Training = c.String("data"), training
	out := c.String("out")
	if err := eval.WriteReport(out, rep); err != nil {
		return err
	}
	printReportTable(c.App.Writer, rep)
	if !quiet {
		fmt.Fprintf(w, "wrote %s, %s and %s\n", filepath.Join(out, "report.json"), filepath.Join(out, "report.md"), filepath.Join(out, "report.html"))
	}
	return nil
}

// loadEvalItems reads the test set: a prepared split (answers from the trained
// segments, the loss masked by the template exactly as in training) or
// prompt/reference lines. It returns how many prepared examples had no single
// answer and were skipped.
func loadEvalItems(path string, m *bindings.Model, seqLen int, chat bool) ([]eval.Item, int, error) {
	prepared, err := isPrepared(path)
	if err != nil {
		return nil, 0, err
	}
	tok := tokenizer{m}
	if !prepared {
		items, err := eval.LoadItems(path)
		if err != nil {
			return nil, 0, err
		}
		for i := range items {
			prompt := items[i].Prompt
			if chat {
				if prompt, err = m.ApplyChatTemplate([]bindings.ChatMessage{{Role: "user", Content: prompt}}, true); err != nil {
					return nil, 0, fmt.Errorf("%w (the model may have no chat template; drop --chat)", err)
				}
			}
			// The prompt is special-token text like a template's; the answer is plain text.
			segs := []data.Segment{{Text: prompt, Special: true}, {Text: items[i].References[0], Train: true}}
			if enc, err := data.EncodeSegments(segs, tok, data.EncodeOptions{MaxLen: seqLen, Truncation: data.TruncateLeft, AddBOS: true}); err == nil {
				items[i].Loss = &eval.LossSequence{IDs: enc.IDs, Mask: enc.Mask}
			}
		}
		return items, 0, nil
	}
	if chat {
		return nil, 0, usagef("--chat applies to prompt/reference files; %s is a prepared split, already rendered with its template", path)
	}
	var items []eval.Item
	skipped := 0
	err = data.ScanPrepared(path, func(p data.PreparedExample) error {
		if p.Prompt == "" || p.Completion == "" {
			skipped++
			return nil
		}
		// The reference is the answer's text without template markup (end-of-turn tokens).
		var ref strings.Builder
		for _, s := range p.Segments {
			if s.Train && !s.Special {
				ref.WriteString(s.Text)
			}
		}
		it := eval.Item{ID: p.ID, Prompt: p.Prompt, References: []string{strings.TrimSpace(ref.String())}}
		if enc, err := p.Encode(tok, data.EncodeOptions{MaxLen: seqLen, Truncation: data.TruncateLeft, AddBOS: true}); err == nil {
			it.Loss = &eval.LossSequence{IDs: enc.IDs, Mask: enc.Mask}
		}
		items = append(items, it)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if len(items) == 0 {
		return nil, skipped, fmt.Errorf("%s: no single-turn examples to evaluate (%d skipped)", path, skipped)
	}
	return items, skipped, nil
}

// isPrepared reports whether the first record of a JSONL file is a prepared
// example (it has "segments").
func isPrepared(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("read test set: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(line, &probe); err != nil {
			return false, nil // LoadItems reports the line with its number
		}
		_, ok := probe["segments"]
		return ok, nil
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return false, nil // no prepared example is this long; LoadItems says where
	} else if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read test set %s: %w", path, err)
	}
	return false, nil
}

// printReportTable writes the report's metric table as Markdown.
func printReportTable(w io.Writer, r *eval.Report) {
	fmt.Fprintf(w, "| model | EM | F1 | BLEU | ROUGE-1 | ROUGE-2 | ROUGE-L | loss | ppl |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range r.Systems {
		t := s.Table
		loss, ppl := "–", "–"
		if s.Loss != nil {
			loss, ppl = fmt.Sprintf("%.4f", s.Loss.MeanNLL), fmt.Sprintf("%.2f", s.Loss.Perplexity)
		}
		fmt.Fprintf(w, "| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s |\n",
			s.Name, t.ExactMatch, t.F1, t.BLEU.Score, t.Rouge1, t.Rouge2, t.RougeL, loss, ppl)
	}
}

// writeLossChart writes dir/loss.svg from dir/metrics.jsonl after training; a
// failure only warns, since the adapter is already written.
func writeLossChart(w io.Writer, dir string) {
	svg := filepath.Join(dir, "loss.svg")
	if err := eval.WriteLossSVG(filepath.Join(dir, "metrics.jsonl"), svg); err != nil {
		fmt.Fprintf(w, "ecotune: loss chart not written: %v\n", err)
		return
	}
	fmt.Fprintf(w, "wrote %s\n", svg)
}

func evalScoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "score",
		Usage:     "score existing predictions against references (no model needed)",
		ArgsUsage: " ",
		Description: `Computes exact match, token F1 (SQuAD normalisation), corpus BLEU (as sacreBLEU
computes it by default) and ROUGE-1/2/L/Lsum F-measures (as rouge-score computes them)
of predictions against references. Each JSONL line holds an "id" and a "prediction", or
an "id" and a "reference" (or "references": [...]); lines pair by id, or by position when
ids are absent. One file holding both fields works too. See docs/metrics.md.

Example:
   ecotune eval score --predictions preds.jsonl --references refs.jsonl
   ecotune eval score --predictions both.jsonl --json`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "predictions", Aliases: []string{"p"}, Usage: "JSONL with predictions", Required: true},
			&cli.StringFlag{Name: "references", Aliases: []string{"r"}, Usage: "JSONL with references (default: the predictions file)"},
			&cli.BoolFlag{Name: "stem", Usage: "Porter-stem tokens for ROUGE (rouge-score's use_stemmer)"},
			&cli.StringFlag{Name: "tokenize", Value: "13a", Usage: "BLEU tokenizer: 13a, intl, char or none"},
			&cli.BoolFlag{Name: "lowercase", Usage: "lower-case text before BLEU"},
			&cli.BoolFlag{Name: "json", Usage: "print the table as JSON"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("eval score takes no arguments (got %q); use --predictions and --references", c.Args().First())
			}
			examples, err := eval.LoadExamples(c.String("predictions"), c.String("references"))
			if err != nil {
				return err
			}
			opts := eval.ScoreOptions{RougeStem: c.Bool("stem")}
			opts.BLEU.Tokenize = eval.BLEUTokenizer(c.String("tokenize"))
			opts.BLEU.Lowercase = c.Bool("lowercase")
			table, err := eval.ScoreExamples(examples, opts)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(table)
			}
			printTable(c.App.Writer, table)
			return nil
		},
	}
}

// printTable writes a metric table as Markdown.
func printTable(w io.Writer, t eval.Table) {
	fmt.Fprintf(w, "| metric | value |\n| --- | ---: |\n")
	fmt.Fprintf(w, "| examples | %d |\n", t.Examples)
	fmt.Fprintf(w, "| exact match | %.2f |\n", t.ExactMatch)
	fmt.Fprintf(w, "| token F1 | %.2f |\n", t.F1)
	fmt.Fprintf(w, "| BLEU | %.2f |\n", t.BLEU.Score)
	fmt.Fprintf(w, "| ROUGE-1 | %.2f |\n", t.Rouge1)
	fmt.Fprintf(w, "| ROUGE-2 | %.2f |\n", t.Rouge2)
	fmt.Fprintf(w, "| ROUGE-L | %.2f |\n", t.RougeL)
	fmt.Fprintf(w, "| ROUGE-Lsum | %.2f |\n", t.RougeLsum)
}
