package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// DefaultTemplate is the template Prepare uses when Config.Template is empty.
const DefaultTemplate = "chatml"

// Output file names in a prepared directory, besides ManifestName.
const (
	SkippedName = "skipped.jsonl" // one Skip per line, in input order
)

// SplitFile is the file name of a split in a prepared directory.
func SplitFile(s Split) string { return string(s) + ".jsonl" }

// Config is everything Prepare needs. Inputs, OutputDir and the fractions
// are the essentials; the zero value of the rest is a sensible default.
type Config struct {
	Inputs    []string // files, directories (read recursively, sorted) and globs
	OutputDir string
	ReadOptions

	Template        string // a name from TemplateNames; default DefaultTemplate
	TemplateOptions TemplateOptions
	ChatTemplater   ChatTemplater // required for Template "model"

	Seed      uint64
	Val, Test float64 // fractions of examples; the rest is train
	Dedup     Dedup   // "" means normalized
	Augment   int     // augmented variants per train example; 0 (the default) is off

	// Tokenizer, if set, counts tokens per example; with MaxTokens it also
	// enforces the length limit (TruncateDrop skips longer examples, the
	// other policies keep them for the trainer to cut).
	Tokenizer  Tokenizer
	MaxTokens  int
	Truncation Truncation
	AddBOS     bool

	Version string // tool version for the manifest; default "dev"
}

// ConfigError is a Config that cannot work (an unknown template, shape, fraction...),
// as opposed to inputs that cannot be read.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Prepare reads, cleans, de-duplicates, splits, (optionally) augments and
// renders the inputs, streaming, and writes train.jsonl, val.jsonl,
// test.jsonl, skipped.jsonl and manifest.json to OutputDir. Same inputs
// and config give byte-identical files. Records that cannot be used are
// skipped and counted; an input that cannot be read at all is an error
// naming it, and then no output file is replaced.
func Prepare(ctx context.Context, cfg Config) (Manifest, error) {
	tmpl, man, err := cfg.resolve()
	if err != nil {
		return man, &ConfigError{Err: err}
	}
	if err := os.MkdirAll(cfg.OutputDir, 0o755); err != nil {
		return man, fmt.Errorf("prepare: output directory: %w", err)
	}
	files, err := expandInputs(cfg.Inputs, cfg.Format, cfg.OutputDir)
	if err != nil {
		return man, fmt.Errorf("prepare: %w", err)
	}

	outs := map[Split]*atomicFile{}
	var skipped *atomicFile
	cleanup := func() {
		for _, a := range outs {
			a.abort()
		}
		if skipped != nil {
			skipped.abort()
		}
	}
	for _, s := range Splits() {
		if outs[s], err = createAtomic(cfg.OutputDir, SplitFile(s)); err != nil {
			cleanup()
			return man, fmt.Errorf("prepare: %w", err)
		}
	}
	if skipped, err = createAtomic(cfg.OutputDir, SkippedName); err != nil {
		cleanup()
		return man, fmt.Errorf("prepare: %w", err)
	}

	p := newPipeline(&cfg.ReadOptions, files)
	p.work = func(it *item, out *[]byte) { cfg.render(it, tmpl, man.Fractions, out) }
	p.exact = man.Dedup == DedupExact
	dd := deduper{mode: man.Dedup}
	var skipLine []byte
	p.consume = func(it *item) error {
		man.Records++
		if it.err == nil && dd.duplicate(it.exact, it.folded) {
			it.err = &RecordError{Reason: ReasonDuplicate, Detail: "same " + string(man.Dedup) + " content as an earlier record"}
		}
		if it.err != nil {
			s := skipOf(it.src, it.err)
			man.Skipped[s.Reason]++
			if cfg.OnSkip != nil {
				cfg.OnSkip(s)
			}
			skipLine = appendSkipLine(skipLine[:0], &s)
			return skipped.writeLine(skipLine)
		}
		man.Kept++
		out := outs[it.split]
		if err := out.writeLine(it.line); err != nil {
			return err
		}
		man.Counts.add(it.split, 1+len(it.aug))
		man.Augmented += len(it.aug)
		for _, l := range it.aug {
			if err := out.writeLine(l); err != nil {
				return err
			}
		}
		return nil
	}
	if err := p.run(ctx); err != nil {
		cleanup()
		return man, fmt.Errorf("prepare: %w", err)
	}

	for i, f := range files {
		man.Inputs = append(man.Inputs, InputInfo{
			Path: f.name, Format: f.format, Compression: f.compression,
			Bytes: p.stats[i].bytes, SHA256: p.stats[i].sha256, Records: p.stats[i].records,
		})
	}
	for _, s := range Splits() {
		info, err := outs[s].commit()
		delete(outs, s)
		if err != nil {
			cleanup()
			return man, fmt.Errorf("prepare: write %s: %w", SplitFile(s), err)
		}
		man.Outputs = append(man.Outputs, info)
	}
	info, err := skipped.commit()
	skipped = nil
	if err != nil {
		return man, fmt.Errorf("prepare: write %s: %w", SkippedName, err)
	}
	man.Outputs = append(man.Outputs, info)
	if err := man.write(cfg.OutputDir); err != nil {
		return man, fmt.Errorf("prepare: write manifest: %w", err)
	}
	return man, nil
}

// resolve checks the config and fills the parts of the manifest that
// describe it.
func (cfg *Config) resolve() (Template, Manifest, error) {
	man := Manifest{Tool: "ecotune", Version: cfg.Version, Seed: cfg.Seed, Augment: cfg.Augment, Skipped: map[Reason]int{}}
	if man.Version == "" {
		man.Version = "dev"
	}
	if cfg.OutputDir == "" {
		return nil, man, errors.New("prepare: no output directory given")
	}
	if cfg.Augment < 0 {
		return nil, man, fmt.Errorf("prepare: augment %d, want ≥ 0", cfg.Augment)
	}
	name := cfg.Template
	if name == "" {
		name = DefaultTemplate
	}
	tmpl, err := TemplateByName(name, cfg.TemplateOptions, cfg.ChatTemplater)
	if err != nil {
		return nil, man, fmt.Errorf("prepare: %w", err)
	}
	man.Template = tmpl.Name()
	if man.Fractions, err = NewFractions(cfg.Val, cfg.Test); err != nil {
		return nil, man, fmt.Errorf("prepare: %w", err)
	}
	if man.Dedup, err = ParseDedup(string(cfg.Dedup)); err != nil {
		return nil, man, fmt.Errorf("prepare: %w", err)
	}
	if cfg.Truncation, err = ParseTruncation(string(cfg.Truncation)); err != nil {
		return nil, man, fmt.Errorf("prepare: %w", err)
	}
	if cfg.MaxTokens > 0 && cfg.Tokenizer == nil {
		return nil, man, errors.New("prepare: a token limit needs a tokenizer (load a model, or drop the limit)")
	}
	if cfg.Shape != "" {
		switch cfg.Shape {
		case ShapeQA, ShapeInstruction, ShapeChat, ShapeChatPairs, ShapeShareGPT, ShapeText:
		default:
			return nil, man, fmt.Errorf("prepare: unknown shape %q (want qa, instruction, chat, chat_pairs, sharegpt or text)", cfg.Shape)
		}
	}
	man.Options = ManifestOptions{
		Format: cfg.Format, Shape: cfg.Shape, Fields: cfg.Fields, SystemPrompt: cfg.SystemPrompt,
		KeepHTML: cfg.KeepHTML, TextChunkChars: cfg.TextChunkChars, TextChunkParagraphs: cfg.TextChunkParagraphs,
		TemplateOptions: cfg.TemplateOptions, MaxTokens: cfg.MaxTokens, AddBOS: cfg.AddBOS,
	}
	if cfg.MaxTokens > 0 {
		man.Options.Truncation = cfg.Truncation
	}
	return tmpl, man, nil
}

// render is Prepare's worker stage: split, render, count tokens, encode
// the output line and the augmented variants, appending them to out.
func (cfg *Config) render(it *item, tmpl Template, fr Fractions, out *[]byte) {
	it.split = fr.Assign(it.folded, cfg.Seed)
	line, tokens, err := cfg.renderLine(&it.ex, it.split, tmpl, out)
	if err != nil {
		it.err = err
		return
	}
	it.line, it.tokens = line, tokens
	if it.split != SplitTrain || cfg.Augment == 0 {
		return
	}
	for _, v := range augment(&it.ex, cfg.Augment, cfg.Seed, it.folded) {
		// A variant that fails (too long after rephrasing) is dropped
		// quietly: the original is already in.
		if l, _, err := cfg.renderLine(&v, it.split, tmpl, out); err == nil {
			it.aug = append(it.aug, l)
		}
	}
}

// renderLine renders ex, appends its output line to out and returns the
// line. Lines share out's memory (one buffer per chunk of records, reused)
// rather than each having its own allocation.
func (cfg *Config) renderLine(ex *Example, split Split, tmpl Template, out *[]byte) ([]byte, int, error) {
	segs, err := tmpl.Render(ex)
	if err != nil {
		return nil, 0, &RecordError{Reason: ReasonTemplateError, Detail: err.Error()}
	}
	tokens := 0
	if cfg.Tokenizer != nil {
		opts := EncodeOptions{AddBOS: cfg.AddBOS}
		if cfg.Truncation == TruncateDrop {
			opts.MaxLen = cfg.MaxTokens
		}
		enc, err := EncodeSegments(segs, cfg.Tokenizer, opts)
		switch {
		case errors.Is(err, ErrTooLong):
			return nil, 0, &RecordError{Reason: ReasonTooLong, Detail: err.Error()}
		case errors.Is(err, ErrNoTrainableTokens):
			return nil, 0, &RecordError{Reason: ReasonNoTrainableTokens, Detail: err.Error()}
		case err != nil:
			return nil, 0, &RecordError{Reason: ReasonTemplateError, Detail: err.Error()}
		}
		tokens = enc.Len()
	}
	// Text, Prompt and Completion stay empty: the line is written from the
	// segments, and a reader derives the rest.
	pe := PreparedExample{
		ID: ex.ID, Source: ex.Source, Split: split, Shape: ex.Shape, Template: tmpl.Name(),
		Augmented: ex.Augmented, Segments: segs, Tokens: tokens,
	}
	start := len(*out)
	*out = appendPreparedLine(*out, &pe)
	return (*out)[start:len(*out):len(*out)], tokens, nil
}

// appendSkipLine appends a Skip as a JSON line (encoding/json is fine here:
// skips are few, and its output for this struct is deterministic).
func appendSkipLine(b []byte, s *Skip) []byte {
	j, _ := json.Marshal(s)
	b = append(b, j...)
	return append(b, '\n')
}
