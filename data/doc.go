// Package data turns raw fine-tuning datasets into training-ready examples:
// the engine of `ecotune prepare`, and the loader the trainer uses. It is
// pure Go (no cgo); the model's tokenizer and chat template come in through
// the Tokenizer and ChatTemplater interfaces, which the bindings package
// implements with llama.cpp.
//
// The pipeline, in order:
//
//  1. Read: JSONL, JSON (array, object of arrays, single object), CSV/TSV,
//     Parquet and plain text, optionally .gz or .zst; files, directories
//     and globs, in sorted order (see docs/formats.md).
//  2. Normalise: each record's shape (Q&A, Alpaca instruction, chat with
//     roles, chat pairs, ShareGPT, raw text) is detected and converted to
//     an Example; text is cleaned (CleanText). Bad records are skipped with
//     file, line and a Reason; nothing in a record can stop the run.
//  3. De-duplicate by a 64-bit hash of exact or normalised content.
//  4. Split by a seeded hash of the normalised content, so duplicates can
//     never cross splits.
//  5. Augment (train only, off by default).
//  6. Render with a Template into Segments that carry the training mask,
//     and write train/val/test JSONL plus manifest.json.
//
// Records stream through a reader goroutine, parallel workers and an
// in-order writer, so memory stays bounded whatever the input size, and the
// output is byte-identical for the same inputs and seed.
//
// Preparing a dataset:
//
//	man, err := data.Prepare(ctx, data.Config{
//		Inputs:    []string{"data/environment"},
//		OutputDir: "out/prepared",
//		Template:  "chatml",
//		Seed:      42,
//		Val:       0.05,
//		Test:      0.05,
//	})
//	if err != nil {
//		return err
//	}
//	fmt.Println(man.Counts.Train, man.Skipped)
//
// Training from it:
//
//	exs, err := data.LoadPrepared("out/prepared/train.jsonl")
//	...
//	var enc []data.Encoded
//	for _, p := range exs {
//		e, err := p.Encode(tok, data.EncodeOptions{MaxLen: 2048, Truncation: data.TruncateLeft, AddBOS: true})
//		...
//		enc = append(enc, e)
//	}
//	batches, err := data.Batches(enc, data.BatchOptions{BatchSize: 4, PadID: pad, Seed: epoch, Shuffle: true})
package data
