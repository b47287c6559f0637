package jobs

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// readableExts are the file types `ecotune prepare` reads.
var readableExts = []string{".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt", ".md"}

// checkUpload validates an uploaded training file before any job can use it: a JSONL file
// line by line (each a JSON object; OpenAI chat lines with a messages array of roles and
// contents and at least one assistant turn), others by type. The error names the line.
func checkUpload(path, filename string) error {
	ext := strings.ToLower(filepath.Ext(filename))
	ok := false
	for _, e := range readableExts {
		ok = ok || e == ext
	}
	if !ok {
		return fmt.Errorf("%s: a fine-tuning file must be one of %s (JSONL in OpenAI's chat format is the usual one)", filename, strings.Join(readableExts, ", "))
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return fmt.Errorf("%s is empty", filename)
	}
	if ext != ".jsonl" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	examples := 0
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if err := checkLine(line); err != nil {
				return fmt.Errorf("%s: line %d: %w", filename, n, err)
			}
			if len(strings.TrimSpace(string(line))) > 0 {
				examples++
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if examples == 0 {
		return fmt.Errorf("%s holds no examples (only blank lines)", filename)
	}
	return nil
}

// checkLine validates one JSONL line.
func checkLine(line []byte) error {
	text := strings.TrimSpace(string(line))
	if text == "" {
		return nil
	}
	if !utf8.ValidString(text) {
		return errors.New("not valid UTF-8")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &obj); err != nil {
		return fmt.Errorf("not a JSON object: %v", err)
	}
	raw, ok := obj["messages"]
	if !ok {
		return nil // another shape prepare detects (prompt/completion, question/answer, text, ...)
	}
	var msgs []struct {
		Role    *string          `json:"role"`
		Content *json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return fmt.Errorf("messages must be an array of {role, content} objects: %v", err)
	}
	if len(msgs) == 0 {
		return errors.New("messages is empty")
	}
	assistant := false
	for i, m := range msgs {
		if m.Role == nil {
			return fmt.Errorf("messages[%d] has no role", i)
		}
		switch *m.Role {
		case "system", "user", "assistant", "tool", "developer":
		default:
			return fmt.Errorf("messages[%d].role %q is not one of system, user, assistant, tool", i, *m.Role)
		}
		if m.Content == nil {
			return fmt.Errorf("messages[%d] has no content", i)
		}
		assistant = assistant || *m.Role == "assistant"
	}
	if !assistant {
		return errors.New("messages has no assistant turn to learn from")
	}
	return nil
}
