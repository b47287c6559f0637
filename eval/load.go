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

// LineError is a problem with one line of a JSONL input file. Its message
// reads "FILE:LINE: what is wrong", so an editor can jump to it.
type LineError struct {
	// File is the file's name as given.
	File string
	// Line is the 1-based line number.
	Line int
	// Err says what is wrong.
	Err error
}

// Error formats the error as "FILE:LINE: message".
func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

// Unwrap returns the underlying error.
func (e *LineError) Unwrap() error { return e.Err }

// ErrBadRecord is wrapped by every LineError about a record's content.
var ErrBadRecord = errors.New("bad record")

// recordKind says which fields a file's records must carry.
type recordKind int

const (
	needPrediction recordKind = 1 << iota
	needReference
)

// record is one parsed line.
type record struct {
	line       int
	id         string
	hasID      bool
	prediction string
	references []string
}

// rawRecord is a line as JSON. Pointers tell a missing or null field from
// an empty one.
type rawRecord struct {
	ID         json.RawMessage `json:"id"`
	Prediction *string         `json:"prediction"`
	Reference  *string         `json:"reference"`
	References *[]string       `json:"references"`
}

// badLine returns a LineError wrapping ErrBadRecord.
func badLine(file string, line int, format string, args ...any) error {
	return &LineError{File: file, Line: line, Err: fmt.Errorf("%w: %s", ErrBadRecord, fmt.Sprintf(format, args...))}
}

// parseID turns a JSON id (string or number) into a string.
func parseID(raw json.RawMessage) (string, bool, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), true, nil
	}
	return "", false, errors.New(`"id" must be a string or a number`)
}

// readRecords parses a JSONL stream. Blank lines are skipped; a UTF-8 byte
// order mark and CRLF line ends are tolerated.
func readRecords(r io.Reader, name string, kind recordKind) ([]record, error) {
	br := bufio.NewReader(r)
	var out []record
	for lineNo := 1; ; lineNo++ {
		line, readErr := br.ReadBytes('\n')
		if readErr != nil && readErr != io.EOF {
			return nil, fmt.Errorf("read %s: %w", name, readErr)
		}
		if lineNo == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
			rec, err := parseRecord(trimmed, name, lineNo, kind)
			if err != nil {
				return nil, err
			}
			out = append(out, rec)
		}
		if readErr == io.EOF {
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w: the file has no records", name, ErrEmptyCorpus)
	}
	return out, nil
}

// parseRecord checks one JSON line against the fields kind requires.
func parseRecord(line []byte, name string, lineNo int, kind recordKind) (record, error) {
	var raw rawRecord
	if err := json.Unmarshal(line, &raw); err != nil {
		return record{}, badLine(name, lineNo, "invalid JSON record (want one object per line with string fields): %v", err)
	}
	rec := record{line: lineNo}
	id, hasID, err := parseID(raw.ID)
	if err != nil {
		return record{}, badLine(name, lineNo, "%v", err)
	}
	rec.id, rec.hasID = id, hasID
	if kind&needPrediction != 0 {
		if raw.Prediction == nil {
			return record{}, badLine(name, lineNo, `missing "prediction" (a string)`)
		}
		rec.prediction = *raw.Prediction
	}
	if kind&needReference != 0 {
		switch {
		case raw.Reference != nil && raw.References != nil:
			return record{}, badLine(name, lineNo, `has both "reference" and "references"; keep one`)
		case raw.Reference != nil:
			rec.references = []string{*raw.Reference}
		case raw.References != nil:
			if len(*raw.References) == 0 {
				return record{}, badLine(name, lineNo, `"references" is empty; give at least one reference`)
			}
			rec.references = *raw.References
		default:
			return record{}, badLine(name, lineNo, `missing "reference" (a string) or "references" (a list of strings)`)
		}
	}
	return rec, nil
}

// readFile opens and parses one JSONL file.
func readFile(path string, kind recordKind) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read examples: %w", err)
	}
	defer f.Close()
	return readRecords(f, path, kind)
}

// ReadExamples reads JSONL whose every line holds both a "prediction" and
// a "reference" or "references" field (an "id" is optional). name labels
// errors.
func ReadExamples(r io.Reader, name string) ([]Example, error) {
	recs, err := readRecords(r, name, needPrediction|needReference)
	if err != nil {
		return nil, err
	}
	if err := checkIDs(recs, name); err != nil {
		return nil, err
	}
	out := make([]Example, len(recs))
	for i, rec := range recs {
		out[i] = Example{ID: rec.id, Prediction: rec.prediction, References: rec.references}
	}
	return out, nil
}

// LoadExamples reads the inputs of "ecotune eval score". With
// referencesPath empty, predictionsPath holds both fields on each line (see
// ReadExamples). Otherwise predictionsPath has {"id", "prediction"} lines and
// referencesPath has {"id", "reference"} or {"id", "references"} lines;
// they are joined by id, or, when no line in either file has an id, by
// position. Every prediction needs a reference and every reference a
// prediction, so a partial run is never scored as if it were whole.
// Examples come back in the predictions file's order.
func LoadExamples(predictionsPath, referencesPath string) ([]Example, error) {
	if referencesPath == "" {
		f, err := os.Open(predictionsPath)
		if err != nil {
			return nil, fmt.Errorf("read examples: %w", err)
		}
		defer f.Close()
		return ReadExamples(f, predictionsPath)
	}
	preds, err := readFile(predictionsPath, needPrediction)
	if err != nil {
		return nil, err
	}
	refs, err := readFile(referencesPath, needReference)
	if err != nil {
		return nil, err
	}
	if err := checkIDs(preds, predictionsPath); err != nil {
		return nil, err
	}
	if err := checkIDs(refs, referencesPath); err != nil {
		return nil, err
	}
	if preds[0].hasID != refs[0].hasID {
		withID, without := predictionsPath, referencesPath
		if refs[0].hasID {
			withID, without = referencesPath, predictionsPath
		}
		return nil, fmt.Errorf("%w: %s has ids but %s does not; give both files ids or neither", ErrBadRecord, withID, without)
	}
	if !preds[0].hasID {
		return joinByPosition(preds, refs, predictionsPath, referencesPath)
	}
	return joinByID(preds, refs, predictionsPath, referencesPath)
}

// checkIDs requires that either every record or none has an id, and that
// ids are unique.
func checkIDs(recs []record, name string) error {
	first := make(map[string]int, len(recs))
	for _, rec := range recs {
		if rec.hasID != recs[0].hasID {
			return badLine(name, rec.line, "some records have an id and some do not; give every record an id or none (line %d sets the pattern)", recs[0].line)
		}
		if !rec.hasID {
			continue
		}
		if prev, dup := first[rec.id]; dup {
			return badLine(name, rec.line, "duplicate id %q (first on line %d)", rec.id, prev)
		}
		first[rec.id] = rec.line
	}
	return nil
}

// joinByPosition pairs the i-th prediction with the i-th reference record.
func joinByPosition(preds, refs []record, predName, refName string) ([]Example, error) {
	if len(preds) != len(refs) {
		return nil, fmt.Errorf("%w: %s has %d predictions but %s has %d references; without ids, lines are paired in order, so the counts must match",
			ErrBadRecord, predName, len(preds), refName, len(refs))
	}
	out := make([]Example, len(preds))
	for i := range preds {
		out[i] = Example{Prediction: preds[i].prediction, References: refs[i].references}
	}
	return out, nil
}

// joinByID pairs predictions and references with the same id.
func joinByID(preds, refs []record, predName, refName string) ([]Example, error) {
	byID := make(map[string]record, len(refs))
	for _, r := range refs {
		byID[r.id] = r
	}
	used := make(map[string]bool, len(preds))
	out := make([]Example, len(preds))
	for i, p := range preds {
		r, ok := byID[p.id]
		if !ok {
			return nil, badLine(predName, p.line, "no reference with id %q in %s", p.id, refName)
		}
		used[p.id] = true
		out[i] = Example{ID: p.id, Prediction: p.prediction, References: r.references}
	}
	for _, r := range refs {
		if !used[r.id] {
			return nil, badLine(refName, r.line, "no prediction with id %q in %s (to score a subset, filter the references file too)", r.id, predName)
		}
	}
	return out, nil
}
