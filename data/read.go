package data

import (
	"context"
	"slices"
)

// ReadOptions controls how inputs are found, parsed and normalised. The
// zero value detects formats by extension and shapes per record. Prepare's
// Config embeds it.
type ReadOptions struct {
	Format              Format // force one format for every input; "" detects by extension
	Fields              FieldMap
	Shape               Shape  // force one shape for every record; "" detects per record
	SystemPrompt        string // added as the system turn of chats that have none
	KeepHTML            bool   // keep HTML tags and entities instead of stripping them
	TextChunkChars      int    // plain-text chunk size in characters (default DefaultTextChunkChars)
	TextChunkParagraphs int    // if set, plain-text chunks are this many paragraphs instead
	Workers             int    // record-processing goroutines; 0 means GOMAXPROCS

	// OnSkip, if set, is told about each skipped record, in input order, on
	// one goroutine at a time.
	OnSkip func(Skip)
	// Progress, if set, is told the bytes read so far (as stored, so
	// compressed bytes for .gz/.zst) and the total size of all inputs.
	Progress func(read, total int64)
}

// Scan reads inputs (files, directories, globs) and calls fn with each
// valid Example in a deterministic order: files sorted by name, records in
// file order. Invalid records go to opts.OnSkip. An error from fn stops the
// scan and is returned.
func Scan(ctx context.Context, inputs []string, opts ReadOptions, fn func(Example) error) error {
	files, err := expandInputs(inputs, opts.Format, "")
	if err != nil {
		return err
	}
	p := newPipeline(&opts, files)
	p.consume = func(it *item) error {
		if it.err != nil {
			if opts.OnSkip != nil {
				opts.OnSkip(skipOf(it.src, it.err))
			}
			return nil
		}
		return fn(it.ex)
	}
	return p.run(ctx)
}

// ReadExamples is Scan into memory, for small datasets, tools and tests; it
// returns the examples and the skipped records.
func ReadExamples(ctx context.Context, inputs []string, opts ReadOptions) ([]Example, []Skip, error) {
	var exs []Example
	var skips []Skip
	onSkip := opts.OnSkip
	opts.OnSkip = func(s Skip) {
		skips = append(skips, s)
		if onSkip != nil {
			onSkip(s)
		}
	}
	err := Scan(ctx, inputs, opts, func(e Example) error {
		exs = append(exs, e)
		return nil
	})
	return exs, skips, err
}

// looksLikeRecord reports whether a top-level JSON object is itself a
// record (it has a field some shape reads) rather than a container of
// record arrays such as {"train": [...]}.
func (c *converter) looksLikeRecord(rec map[string]any) bool {
	for _, keys := range [][]string{c.messages, c.question, c.answer, c.instruction, c.output, c.text} {
		if has(rec, keys) {
			return true
		}
	}
	return false
}

func sortStrings(s []string) { slices.Sort(s) }
