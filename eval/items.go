package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// rawItem is a line of a prompts file. Pointers tell a missing field from an
// empty one.
type rawItem struct {
	ID         json.RawMessage `json:"id"`
	Prompt     *string         `json:"prompt"`
	Reference  *string         `json:"reference"`
	References *[]string       `json:"references"`
}

// LoadItems reads a JSONL file of evaluation items, one
// {"id", "prompt", "reference"} or {"id", "prompt", "references": [...]}
// object per line ("id" optional). Blank lines are skipped; errors name the
// file and line.
func LoadItems(path string) ([]Item, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read items: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var out []Item
	for lineNo := 1; ; lineNo++ {
		line, rerr := r.ReadBytes('\n')
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return nil, fmt.Errorf("read items: %s:%d: %w", path, lineNo, rerr)
		}
		if lineNo == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if t := bytes.TrimSpace(line); len(t) > 0 {
			it, err := parseItem(t, path, lineNo)
			if err != nil {
				return nil, err
			}
			out = append(out, it)
		}
		if rerr != nil {
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w: the file has no items", path, ErrEmptyCorpus)
	}
	return out, nil
}

// parseItem checks one line of a prompts file.
func parseItem(line []byte, path string, lineNo int) (Item, error) {
	var raw rawItem
	if err := json.Unmarshal(line, &raw); err != nil {
		return Item{}, badLine(path, lineNo, "invalid JSON record (want {\"prompt\": ..., \"reference\": ...}): %v", err)
	}
	id, _, err := parseID(raw.ID)
	if err != nil {
		return Item{}, badLine(path, lineNo, "%v", err)
	}
	if raw.Prompt == nil {
		return Item{}, badLine(path, lineNo, `missing "prompt" (a string)`)
	}
	it := Item{ID: id, Prompt: *raw.Prompt}
	switch {
	case raw.Reference != nil && raw.References != nil:
		return Item{}, badLine(path, lineNo, `has both "reference" and "references"; keep one`)
	case raw.Reference != nil:
		it.References = []string{*raw.Reference}
	case raw.References != nil && len(*raw.References) > 0:
		it.References = *raw.References
	default:
		return Item{}, badLine(path, lineNo, `missing "reference" (a string) or "references" (a non-empty list of strings)`)
	}
	return it, nil
}
