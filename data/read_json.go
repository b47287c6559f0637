package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// maxLineBytes bounds one JSONL line so a file without newlines cannot take
// all memory; 256 MiB is far beyond any real training record.
const maxLineBytes = 256 << 20

// readJSONL emits one item per non-blank line; the JSON is parsed later, in
// the workers, so a malformed line becomes a skip with its line number.
func readJSONL(r *bufio.Reader, startLine int, emit emitFunc) error {
	line, row := startLine-1, 0
	var long []byte
	for {
		b, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(b) > maxLineBytes {
				return fmt.Errorf("line %d: longer than %d bytes", line+1, maxLineBytes)
			}
			long = append(long, b...)
			continue
		}
		if len(long) > 0 {
			b = append(long, b...)
			long = long[:0]
		}
		if len(b) > 0 {
			line++
			if t := bytes.TrimSpace(b); len(t) > 0 {
				row++
				if eerr := emit(item{src: Source{Line: line, Row: row}, raw: t}); eerr != nil {
					return eerr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", line+1, err)
		}
	}
}

// readJSON reads a .json file, which in practice is one of: an array of
// records (streamed), JSONL under a .json name (what Hugging Face's to_json
// writes), a single record, or an object holding arrays of records such as
// {"train": [...], "test": [...]} (read whole; use JSONL for huge data).
func readJSON(r *bufio.Reader, isRecord func(map[string]any) bool, emit emitFunc) error {
	line := 1
	for {
		c, err := r.ReadByte()
		if err == io.EOF {
			return nil // an empty file holds no records
		}
		if err != nil {
			return err
		}
		if c == '\n' {
			line++
		}
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			continue
		}
		_ = r.UnreadByte()
		switch c {
		case '[':
			lc := &lineCounter{r: r, line: line}
			dec := json.NewDecoder(lc)
			if _, err := dec.Token(); err != nil {
				return jsonErr(lc, dec, err)
			}
			return streamArray(dec, lc, "", emit)
		case '{':
			if looksLikeJSONL(r) {
				return readJSONL(r, line, emit)
			}
			all, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			return readJSONObject(all, line, isRecord, emit)
		}
		return fmt.Errorf("line %d: want a JSON array or object, found %q", line, c)
	}
}

// looksLikeJSONL reports whether the first line is a complete JSON value
// with more content after it, which a pretty-printed object never is.
func looksLikeJSONL(r *bufio.Reader) bool {
	buf, _ := r.Peek(readBufferSize)
	i := bytes.IndexByte(buf, '\n')
	if i < 0 {
		return false
	}
	return json.Valid(buf[:i]) && len(bytes.TrimSpace(buf[i:])) > 0
}

// streamArray emits the elements of the array dec is inside, each with the
// line its first byte is on.
func streamArray(dec *json.Decoder, lc *lineCounter, key string, emit emitFunc) error {
	row := 0
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return jsonErr(lc, dec, err)
		}
		// The decoder's offset is just past the element; its start is the
		// element's length before that (RawMessage may or may not carry
		// the leading whitespace, so trim it to be sure).
		start := dec.InputOffset() - int64(len(bytes.TrimLeft(raw, " \t\r\n")))
		row++
		if err := emit(item{src: Source{Line: lc.lineAt(start), Row: row, Key: key}, raw: raw}); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return jsonErr(lc, dec, err)
	}
	return nil
}

// readJSONObject handles a top-level object: one record, or a container
// whose array-of-object values hold the records (keys in file order).
func readJSONObject(all []byte, line int, isRecord func(map[string]any) bool, emit emitFunc) error {
	var rec map[string]any
	if err := json.Unmarshal(all, &rec); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("line %d: %w", line+bytes.Count(all[:min(int(se.Offset), len(all))], []byte{'\n'}), err)
		}
		return err
	}
	lists := map[string]bool{}
	for k, v := range rec {
		if l, ok := v.([]any); ok && len(l) > 0 {
			if _, isObj := l[0].(map[string]any); isObj {
				lists[k] = true
			}
		}
	}
	if len(lists) == 0 || isRecord(rec) {
		return emit(item{src: Source{Line: line, Row: 1}, rec: rec})
	}
	lc := &lineCounter{r: bytes.NewReader(all), line: line}
	dec := json.NewDecoder(lc)
	if _, err := dec.Token(); err != nil {
		return jsonErr(lc, dec, err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return jsonErr(lc, dec, err)
		}
		key, _ := tok.(string)
		if lists[key] {
			if _, err := dec.Token(); err != nil {
				return jsonErr(lc, dec, err)
			}
			if err := streamArray(dec, lc, key, emit); err != nil {
				return err
			}
			continue
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return jsonErr(lc, dec, err)
		}
	}
	return nil
}

func jsonErr(lc *lineCounter, dec *json.Decoder, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	off := dec.InputOffset() // where the failing value starts
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// The decoder's own offset counts only bytes inside values, so
		// find the error's position by re-checking the buffered rest,
		// which starts at the failing value.
		rest, _ := io.ReadAll(dec.Buffered())
		var v any
		var se2 *json.SyntaxError
		if errors.As(json.Unmarshal(rest, &v), &se2) {
			off += se2.Offset - 1
		}
	}
	return fmt.Errorf("line %d: %w", lc.lineAt(off), err)
}

// lineCounter maps byte offsets of a stream to line numbers. It remembers
// the newlines read but not yet passed, so memory is bounded by what the
// JSON decoder buffers, and offsets must be asked in increasing order.
type lineCounter struct {
	r    io.Reader
	pos  int64
	nl   []int64
	line int // line number of the byte just after the last newline passed
}

func (c *lineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i, b := range p[:n] {
		if b == '\n' {
			c.nl = append(c.nl, c.pos+int64(i))
		}
	}
	c.pos += int64(n)
	return n, err
}

func (c *lineCounter) lineAt(off int64) int {
	k := sort.Search(len(c.nl), func(i int) bool { return c.nl[i] >= off })
	c.line += k
	c.nl = c.nl[k:]
	return c.line
}

// unmarshalJSON is json.Unmarshal; named so the one place that decodes
// records can change decoder without touching callers.
func unmarshalJSON(b []byte, v any) error { return json.Unmarshal(b, v) }

// decodeRecord parses one JSON record, which must be an object.
func decodeRecord(raw []byte) (map[string]any, error) {
	v, ok := parseJSON(raw)
	if !ok {
		// encoding/json says what is wrong (and decides, should the parsers disagree).
		if err := unmarshalJSON(raw, &v); err != nil {
			return nil, &RecordError{Reason: ReasonMalformedJSON, Detail: jsonDetail(err)}
		}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &RecordError{Reason: ReasonWrongType, Detail: "record is a JSON " + typeName(v) + ", want an object"}
	}
	return m, nil
}

// jsonDetail shortens encoding/json's messages and drops the "json: " prefix.
func jsonDetail(err error) string {
	s := err.Error()
	if len(s) > 6 && s[:6] == "json: " {
		s = s[6:]
	}
	return s
}
