package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/data"
	"github.com/ecotune/ecotune/trainer"
)

func prepareCommand() *cli.Command {
	return &cli.Command{
		Name:      "prepare",
		Usage:     "turn datasets (JSON, JSONL, CSV/TSV, Parquet, text) into training examples",
		ArgsUsage: "PATH...",
		Description: `Reads files, directories and globs (.gz and .zst too), detects each record's
shape (Q&A, Alpaca instruction, chat messages, ShareGPT, plain text), cleans and
validates records, removes duplicates, splits train/val/test by a seeded hash, renders a
prompt template and writes train.jsonl, val.jsonl, test.jsonl, skipped.jsonl and
manifest.json. The same inputs and seed give byte-identical files. See docs/formats.md.

With --model, examples are counted in that model's tokens (and --max-tokens enforced),
and --template model uses the model's own chat template.

Example:
   ecotune prepare data/environment -o out/data --template chatml --seed 42
   ecotune prepare chats.jsonl.zst -o out/data --model base.gguf --template model --max-tokens 1024`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "output directory", Required: true},
			&cli.StringFlag{Name: "template", Value: data.DefaultTemplate, Usage: "prompt template: " + strings.Join(data.TemplateNames(), ", ")},
			&cli.Uint64Flag{Name: "seed", Value: 42, Usage: "seed of the split (and augmentation)"},
			&cli.Float64Flag{Name: "val", Value: 0.05, Usage: "fraction of examples for validation"},
			&cli.Float64Flag{Name: "test", Value: 0.05, Usage: "fraction of examples for test"},
			&cli.StringFlag{Name: "dedup", Value: string(data.DedupNormalized), Usage: "de-duplication: none, exact or normalized"},
			&cli.IntFlag{Name: "augment", Usage: "augmented variants per training example (0: off)"},
			&cli.StringFlag{Name: "system-prompt", Usage: "system turn for chats that have none"},
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "GGUF whose tokenizer (and chat template) to use"},
			&cli.IntFlag{Name: "max-tokens", Usage: "longest example in tokens (needs --model)"},
			&cli.StringFlag{Name: "truncation", Value: string(data.TruncateDrop), Usage: "over-long examples: drop, left or right"},
			&cli.StringSliceFlag{Name: "field", Usage: "map a field: SLOT=COLUMN with SLOT one of question, answer, instruction, input, output, system, messages, role, content, text, id (repeatable)"},
			&cli.StringFlag{Name: "format", Usage: "read every input as this format instead of by extension: jsonl, json, csv, tsv, parquet, text"},
			&cli.StringFlag{Name: "shape", Usage: "treat every record as this shape instead of detecting it: qa, instruction, chat, chat_pairs, sharegpt, text"},
			&cli.BoolFlag{Name: "keep-html", Usage: "keep HTML tags and entities instead of stripping them"},
			&cli.IntFlag{Name: "text-chunk-chars", Usage: "plain-text inputs: chunk size in characters (default " + fmt.Sprint(data.DefaultTextChunkChars) + ")"},
			&cli.IntFlag{Name: "text-chunk-paragraphs", Usage: "plain-text inputs: chunks of this many paragraphs instead"},
			&cli.BoolFlag{Name: "json", Usage: "print the manifest as JSON"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		},
		Action: func(c *cli.Context) (err error) {
			if c.NArg() == 0 {
				return usagef("prepare needs at least one input PATH")
			}
			// A refused run leaves no output directory it created (nothing under the
			// final names unless complete); an existing one keeps its old files.
			_, statErr := os.Stat(c.String("out"))
			created := errors.Is(statErr, os.ErrNotExist)
			defer func() {
				if err != nil && created {
					os.RemoveAll(c.String("out"))
				}
			}()
			cfg := data.Config{
				Inputs:     c.Args().Slice(),
				OutputDir:  c.String("out"),
				Template:   c.String("template"),
				Seed:       c.Uint64("seed"),
				Val:        c.Float64("val"),
				Test:       c.Float64("test"),
				Dedup:      data.Dedup(c.String("dedup")),
				Augment:    c.Int("augment"),
				MaxTokens:  c.Int("max-tokens"),
				Truncation: data.Truncation(c.String("truncation")),
				Version:    version,
			}
			cfg.SystemPrompt = c.String("system-prompt")
			cfg.Format, cfg.Shape, cfg.KeepHTML = data.Format(c.String("format")), data.Shape(c.String("shape")), c.Bool("keep-html")
			cfg.TextChunkChars, cfg.TextChunkParagraphs = c.Int("text-chunk-chars"), c.Int("text-chunk-paragraphs")
			fields, err := data.ParseFieldMap(c.StringSlice("field"))
			if err != nil {
				return usageError{err}
			}
			cfg.Fields = fields
			if path := c.String("model"); path != "" {
				// libllama reads the hyper-parameters even for the vocabulary alone.
				if err := checkModelFile(path, trainer.CheckAll, true); err != nil {
					return err
				}
				m, err := bindings.LoadModel(path, bindings.ModelOptions{VocabOnly: true})
				if err != nil {
					return err
				}
				defer m.Close()
				if cfg.Template == "model" && m.ChatTemplate() == "" {
					return usagef("--template model: %s has no chat template; choose one of %s", path, strings.Join(data.TemplateNames()[:len(data.TemplateNames())-1], ", "))
				}
				cfg.Tokenizer = tokenizer{m}
				cfg.ChatTemplater = modelTemplater{m}
				cfg.AddBOS = true
			} else if cfg.MaxTokens > 0 || cfg.Template == "model" {
				return usagef("--max-tokens and --template model need --model")
			}
			if !c.Bool("quiet") {
				bar := progressbar.NewOptions64(-1,
					progressbar.OptionSetWriter(c.App.ErrWriter),
					progressbar.OptionSetDescription("prepare"),
					progressbar.OptionShowBytes(true),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionThrottle(100_000_000),
					progressbar.OptionClearOnFinish())
				cfg.Progress = func(read, total int64) {
					bar.ChangeMax64(total)
					_ = bar.Set64(read)
				}
				defer bar.Finish()
			}
			// Ctrl-C cancels the run: Prepare removes its temporary files and replaces
			// none of the outputs.
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			var firstSkip *data.Skip
			cfg.OnSkip = func(s data.Skip) {
				if firstSkip == nil {
					firstSkip = &s
				}
			}
			man, err := data.Prepare(ctx, cfg)
			if err != nil && ctx.Err() != nil && c.Context.Err() == nil {
				return fmt.Errorf("prepare: interrupted; %s was left as it was", cfg.OutputDir)
			}
			var ce *data.ConfigError
			if errors.As(err, &ce) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(man)
			}
			printManifest(c.App.Writer, cfg.OutputDir, man, man.Kept > 0 || !created)
			if man.Records == 0 {
				return fmt.Errorf("prepare: %s holds no records", strings.Join(cfg.Inputs, ", "))
			}
			if man.Kept == 0 {
				// The output directory goes with the error, so the first reason is in it.
				first := "see skipped.jsonl"
				if firstSkip != nil {
					first = "the first: " + firstSkip.String()
				}
				return fmt.Errorf("prepare: none of the %d records could be used; %s", man.Records, first)
			}
			return nil
		},
	}
}

// modelTemplater renders chats with a model's own template for data.Prepare.
type modelTemplater struct{ m *bindings.Model }

func (t modelTemplater) ApplyChatTemplate(msgs []data.Message, addAssistantPrompt bool) (string, error) {
	out := make([]bindings.ChatMessage, len(msgs))
	for i, m := range msgs {
		out[i] = bindings.ChatMessage{Role: string(m.Role), Content: m.Content}
	}
	return t.m.ApplyChatTemplate(out, addAssistantPrompt)
}

func printManifest(w interface{ Write([]byte) (int, error) }, dir string, man data.Manifest, wrote bool) {
	fmt.Fprintf(w, "read %d records, kept %d (template %s, seed %d)\n", man.Records, man.Kept, man.Template, man.Seed)
	fmt.Fprintf(w, "train %d · val %d · test %d", man.Counts.Train, man.Counts.Val, man.Counts.Test)
	if man.Augmented > 0 {
		fmt.Fprintf(w, " (%d augmented)", man.Augmented)
	}
	fmt.Fprintln(w)
	if len(man.Skipped) > 0 {
		reasons := make([]string, 0, len(man.Skipped))
		for r := range man.Skipped {
			reasons = append(reasons, string(r))
		}
		sort.Strings(reasons)
		fmt.Fprintln(w, "skipped (details in skipped.jsonl):")
		for _, r := range reasons {
			fmt.Fprintf(w, "  %-24s %d\n", r, man.Skipped[data.Reason(r)])
		}
	}
	if wrote {
		// A run without a usable record fails, and the outputs it created go with it.
		fmt.Fprintf(w, "wrote %s%c{train,val,test,skipped}.jsonl and manifest.json\n", dir, os.PathSeparator)
	}
}
