package data

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
)

// PreparedExample is one line of a prepared split file (train.jsonl,
// val.jsonl, test.jsonl): the rendered text, its segments with the
// training mask, and where it came from. Its JSON form is the file's line
// (see prepared_line.go): segments are stored as lengths into Text, and
// Prompt and Completion are derived from them when the line is read.
type PreparedExample struct {
	ID         string
	Source     Source
	Split      Split
	Shape      Shape
	Template   string
	Augmented  bool
	Text       string
	Prompt     string    // single-turn only: the text before the answer (derived on reading, not stored)
	Completion string    // single-turn only: the trained text (derived on reading, not stored)
	Segments   []Segment // pieces of Text with their mask
	Tokens     int       // token count, when Prepare had a tokenizer
}

// Encode tokenizes the example's segments; see EncodeSegments.
func (p *PreparedExample) Encode(tok Tokenizer, opts EncodeOptions) (Encoded, error) {
	return EncodeSegments(p.Segments, tok, opts)
}

// promptCompletion splits single-turn segments into the text before the
// one run of trained segments and that run; multi-turn gives "", "".
func promptCompletion(segs []Segment) (string, string) {
	first, last := -1, -1
	for i, s := range segs {
		if s.Train {
			if first < 0 {
				first = i
			} else if last != i-1 {
				return "", ""
			}
			last = i
		}
	}
	if first < 0 {
		return "", ""
	}
	return Rendered(segs[:first]), Rendered(segs[first : last+1])
}

// LoadPrepared reads a prepared split file (train.jsonl, val.jsonl or
// test.jsonl) into memory, for the trainer.
func LoadPrepared(path string) ([]PreparedExample, error) {
	var out []PreparedExample
	err := ScanPrepared(path, func(p PreparedExample) error {
		out = append(out, p)
		return nil
	})
	return out, err
}

// ScanPrepared calls fn for each example of a prepared split file in file
// order, without holding the file in memory.
func ScanPrepared(path string, fn func(PreparedExample) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("load prepared data: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, readBufferSize)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if len(b) > 0 {
			var p PreparedExample
			// Not json.Unmarshal(b, &p): that would scan the line once
			// more before handing it to UnmarshalJSON.
			if jerr := p.UnmarshalJSON(b); jerr != nil {
				return fmt.Errorf("load prepared data: %s:%d: %w (was the file written by ecotune prepare?)", path, line, jerr)
			}
			if ferr := fn(p); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("load prepared data: %s:%d: %w", path, line, err)
		}
	}
}
