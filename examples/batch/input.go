package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// item is one input line, checked.
type item struct {
	line      int             // 1-based, for messages
	id        json.RawMessage // echoed as it was written
	prompt    string
	adapter   string // "" is the base model
	maxTokens *int   // nil: --max-tokens
}

// inputLine is an input line's JSON; pointers tell a missing field from a zero one.
type inputLine struct {
	ID        json.RawMessage `json:"id"`
	Prompt    *string         `json:"prompt"`
	Adapter   string          `json:"adapter"`
	MaxTokens *int            `json:"max_tokens"`
}

// readInput reads and checks every line of path; adapters are the names lines may use.
// Errors read "PATH:LINE: what is wrong". Blank lines are skipped.
func readInput(path string, adapters map[string]string) ([]item, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError already names the file
	}
	defer f.Close()
	var items []item
	s := bufio.NewScanner(f)
	s.Buffer(nil, 64<<20) // a prompt may be a whole document
	for n := 1; s.Scan(); n++ {
		text := bytes.TrimSpace(s.Bytes())
		if len(text) == 0 {
			continue
		}
		it, err := parseLine(text, adapters)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		it.line = n
		items = append(items, it)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no prompts in the file", path)
	}
	return items, nil
}

func parseLine(text []byte, adapters map[string]string) (item, error) {
	var in inputLine
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields() // a misspelt "max_token" should not be silently ignored
	if err := dec.Decode(&in); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return item{}, fmt.Errorf("%q must be %s, not %s", typeErr.Field, typeErr.Type.Kind(), typeErr.Value)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return item{}, errors.New("the JSON value ends before it is complete")
		}
		return item{}, errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return item{}, errors.New("more than one JSON value on the line")
	}
	switch {
	case len(in.ID) == 0 || string(in.ID) == "null":
		return item{}, errors.New(`"id" is missing`)
	case in.Prompt == nil:
		return item{}, errors.New(`"prompt" is missing`)
	case *in.Prompt == "":
		return item{}, errors.New(`"prompt" is empty`)
	case in.MaxTokens != nil && *in.MaxTokens < 0:
		return item{}, fmt.Errorf(`"max_tokens" is %d; it must not be negative`, *in.MaxTokens)
	}
	if _, ok := adapters[in.Adapter]; in.Adapter != "" && !ok {
		return item{}, fmt.Errorf(`"adapter" %q was not given with --adapter`, in.Adapter)
	}
	return item{id: in.ID, prompt: *in.Prompt, adapter: in.Adapter, maxTokens: in.MaxTokens}, nil
}
