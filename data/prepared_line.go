package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// A prepared line stores each segment as [length, flags] over "text"
// rather than repeating its text: the segments (and the prompt/completion
// pair, which the old form also wrote) are the rendered text again, so the
// old form wrote every example three times and writing dominated Prepare.
// The length is in bytes of the UTF-8 text as read back (see
// appendJSONStringPiece);
// flags are segTrain|segSpecial.
// Lines in the old form ("segments":[{"text":…,"train":…}], with "prompt"
// and "completion") are still read.
const (
	segTrain   = 1
	segSpecial = 2
)

func segmentFlags(s Segment) int {
	f := 0
	if s.Train {
		f |= segTrain
	}
	if s.Special {
		f |= segSpecial
	}
	return f
}

// appendPreparedLine appends p as one newline-terminated JSON line. The
// "text" field is written from p.Segments, not p.Text, so the hot path
// never joins the segments into a string; MarshalJSON checks they agree.
// JSON escaping works rune by rune and segments split the text between
// runes, so escaping piece by piece gives the escaped whole.
func appendPreparedLine(b []byte, p *PreparedExample) []byte {
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
	b = append(b, `,"text":"`...)
	var lens [16]int // the segments' lengths as read back; templates give a few per turn
	decoded := lens[:0]
	for _, s := range p.Segments {
		var n int
		b, n = appendJSONStringPiece(b, s.Text)
		decoded = append(decoded, n)
	}
	b = append(b, `","segments":[`...)
	for i, s := range p.Segments {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendJSONInt(b, decoded[i])
		b = append(b, ',')
		b = appendJSONInt(b, segmentFlags(s))
		b = append(b, ']')
	}
	b = append(b, ']')
	if p.Tokens != 0 {
		b = append(b, `,"tokens":`...)
		b = appendJSONInt(b, p.Tokens)
	}
	return append(b, "}\n"...)
}

// MarshalJSON writes the example as a prepared file's line (without the
// newline); json.Marshal then escapes <, > and & as it always does, and an
// Encoder with SetEscapeHTML(false) gives the file's bytes. Text must be
// the segments joined, as Prepare renders it.
func (p PreparedExample) MarshalJSON() ([]byte, error) {
	rest := p.Text
	for _, s := range p.Segments {
		if len(s.Text) > len(rest) || rest[:len(s.Text)] != s.Text {
			return nil, errors.New("prepared example: text is not its segments joined")
		}
		rest = rest[len(s.Text):]
	}
	if rest != "" {
		return nil, errors.New("prepared example: text is not its segments joined")
	}
	line := appendPreparedLine(make([]byte, 0, 2*len(p.Text)+256), &p)
	return line[:len(line)-1], nil
}

// lineFields are the fields a prepared line has in both forms.
type lineFields struct {
	ID         string `json:"id"`
	Source     Source `json:"source"`
	Split      Split  `json:"split"`
	Shape      Shape  `json:"shape"`
	Template   string `json:"template"`
	Augmented  bool   `json:"augmented"`
	Text       string `json:"text"`
	Prompt     string `json:"prompt"`
	Completion string `json:"completion"`
	Tokens     int    `json:"tokens"`
}

func (l *lineFields) example() PreparedExample {
	return PreparedExample{
		ID: l.ID, Source: l.Source, Split: l.Split, Shape: l.Shape, Template: l.Template,
		Augmented: l.Augmented, Text: l.Text, Prompt: l.Prompt, Completion: l.Completion, Tokens: l.Tokens,
	}
}

// oldFormMark starts the segments of a line in the old form as
// ecotune wrote it. It cannot occur inside a JSON string (its quotes
// would be escaped there), so finding it tells the form before decoding.
var oldFormMark = []byte(`"segments":[{`)

// UnmarshalJSON reads a prepared line in either form. Segments stored as
// lengths become substrings of Text, so they share its memory; Prompt and
// Completion, when the line lacks them, are derived as Prepare did.
func (p *PreparedExample) UnmarshalJSON(b []byte) error {
	if bytes.Contains(b, oldFormMark) {
		// One decoding pass, as before the new form: through RawMessage
		// the old form's long segments would be scanned twice more.
		var l struct {
			lineFields
			Segments []Segment `json:"segments"`
		}
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		*p = l.example()
		p.Segments = l.Segments
	} else {
		var l struct {
			lineFields
			Segments json.RawMessage `json:"segments"`
		}
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		*p = l.example()
		var err error
		if p.Segments, err = decodeSegments(l.Segments, l.Text); err != nil {
			return fmt.Errorf("segments: %w", err)
		}
	}
	if p.Prompt == "" && p.Completion == "" && p.Shape != ShapeText {
		p.Prompt, p.Completion = promptCompletion(p.Segments)
	}
	return nil
}

// decodeSegments reads "segments" in either form. The [length, flags]
// form is parsed by hand: with encoding/json each little array cost a
// reflective decode, and reading files became slower than before.
func decodeSegments(raw []byte, text string) ([]Segment, error) {
	sc := spanScanner{b: raw}
	sc.space()
	if sc.i == len(sc.b) || sc.literal("null") {
		if text != "" {
			return nil, errors.New("a text without segments")
		}
		return nil, nil
	}
	if !sc.next('[') {
		return nil, errors.New("want an array")
	}
	if sc.peek() == '{' {
		var segs []Segment // the old form: each segment has its own text
		return segs, json.Unmarshal(raw, &segs)
	}
	var segs []Segment
	off := 0
	for first := true; !sc.next(']'); first = false {
		if !first && !sc.next(',') {
			return nil, errors.New("want , or ] after a segment")
		}
		if sc.peek() == '{' {
			return nil, errors.New("they mix [length, flags] and {text, train} forms")
		}
		n, ok1 := 0, sc.next('[')
		if ok1 {
			n, ok1 = sc.uint(len(text) - off)
		}
		flags, ok2 := 0, ok1 && sc.next(',')
		if ok2 {
			flags, ok2 = sc.uint(segTrain | segSpecial)
		}
		if !ok2 || !sc.next(']') {
			return nil, fmt.Errorf("segment %d: want [length, flags] with flags 0–3 and lengths ≥ 0 within the text's %d bytes", len(segs), len(text))
		}
		end := off + n
		if end < len(text) && !utf8.RuneStart(text[end]) {
			return nil, fmt.Errorf("segment %d ends inside a character (byte %d of the text)", len(segs), end)
		}
		segs = append(segs, Segment{Text: text[off:end], Train: flags&segTrain != 0, Special: flags&segSpecial != 0})
		off = end
	}
	if sc.space(); sc.i != len(sc.b) {
		return nil, errors.New("trailing bytes")
	}
	if len(segs) == 0 && text != "" {
		return nil, errors.New("a text without segments")
	}
	if off != len(text) {
		return nil, fmt.Errorf("they cover %d bytes, the text has %d", off, len(text))
	}
	return segs, nil
}

// spanScanner reads the [[length, flags], ...] array; JSON whitespace is
// allowed between tokens.
type spanScanner struct {
	b []byte
	i int
}

func (s *spanScanner) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

func (s *spanScanner) peek() byte {
	s.space()
	if s.i == len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// next consumes c if it comes next.
func (s *spanScanner) next(c byte) bool {
	if s.peek() != c {
		return false
	}
	s.i++
	return true
}

func (s *spanScanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

// uint reads a non-negative integer no larger than limit.
func (s *spanScanner) uint(limit int) (int, bool) {
	s.space()
	start, v := s.i, 0
	for ; s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9'; s.i++ {
		v = v*10 + int(s.b[s.i]-'0')
		if v > limit {
			return 0, false
		}
	}
	// JSON has no leading zeros ("07"); "0" alone is fine.
	return v, s.i > start && (s.i-start == 1 || s.b[start] != '0')
}
