package data

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// PreparedExample is one line of a prepared split file (train.jsonl,
// val.jsonl, test.jsonl): the rendered text, its segments with the
// training mask, and where it came from.
type PreparedExample struct {
	ID         string    `json:"id"`
	Source     Source    `json:"source"`
	Split      Split     `json:"split"`
	Shape      Shape     `json:"shape"`
	Template   string    `json:"template"`
	Augmented  bool      `json:"augmented"`
	Text       string    `json:"text"`
	Prompt     string    `json:"prompt,omitempty"`     // single-turn only: the text before the answer
	Completion string    `json:"completion,omitempty"` // single-turn only: the trained text
	Segments   []Segment `json:"segments"`
	Tokens     int       `json:"tokens,omitempty"` // token count, when Prepare had a tokenizer
}

// Encode tokenizes the example's segments; see EncodeSegments.
func (p *PreparedExample) Encode(tok Tokenizer, opts EncodeOptions) (Encoded, error) {
	return EncodeSegments(p.Segments, tok, opts)
}

// newPrepared builds the output record of a rendered example.
func newPrepared(ex *Example, split Split, template string, segs []Segment, tokens int) PreparedExample {
	p := PreparedExample{
		ID: ex.ID, Source: ex.Source, Split: split, Shape: ex.Shape, Template: template,
		Augmented: ex.Augmented, Text: Rendered(segs), Segments: segs, Tokens: tokens,
	}
	if !ex.IsText() {
		p.Prompt, p.Completion = promptCompletion(segs)
	}
	return p
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

// appendLine appends p as one JSON line, field for field what
// encoding/json would write for PreparedExample (the tests check).
func (p *PreparedExample) appendLine(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, p.ID)
	b = append(b, `,"source":{"file":`...)
	b = appendJSONString(b, p.Source.File)
	if p.Source.Line != 0 {
		b = append(b, `,"line":`...)
		b = appendJSONInt(b, p.Source.Line)
	}
	b = append(b, `,"row":`...)
	b = appendJSONInt(b, p.Source.Row)
	if p.Source.Key != "" {
		b = append(b, `,"key":`...)
		b = appendJSONString(b, p.Source.Key)
	}
	b = append(b, `},"split":`...)
	b = appendJSONString(b, string(p.Split))
	b = append(b, `,"shape":`...)
	b = appendJSONString(b, string(p.Shape))
	b = append(b, `,"template":`...)
	b = appendJSONString(b, p.Template)
	b = append(b, `,"augmented":`...)
	b = appendJSONBool(b, p.Augmented)
	b = append(b, `,"text":`...)
	b = appendJSONString(b, p.Text)
	if p.Prompt != "" {
		b = append(b, `,"prompt":`...)
		b = appendJSONString(b, p.Prompt)
	}
	if p.Completion != "" {
		b = append(b, `,"completion":`...)
		b = appendJSONString(b, p.Completion)
	}
	b = append(b, `,"segments":[`...)
	for i, s := range p.Segments {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"text":`...)
		b = appendJSONString(b, s.Text)
		b = append(b, `,"train":`...)
		b = appendJSONBool(b, s.Train)
		if s.Special {
			b = append(b, `,"special":true`...)
		}
		b = append(b, '}')
	}
	if p.Segments == nil {
		b = append(b[:len(b)-1], "null"...)
	} else {
		b = append(b, ']')
	}
	if p.Tokens != 0 {
		b = append(b, `,"tokens":`...)
		b = appendJSONInt(b, p.Tokens)
	}
	return append(b, "}\n"...)
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
			if jerr := json.Unmarshal(b, &p); jerr != nil {
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
