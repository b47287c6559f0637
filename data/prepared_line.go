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
// The length is in bytes of the UTF-8 text; flags are segTrain|segSpecial.
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
	for _, s := range p.Segments {
		b = appendJSONStringBody(b, s.Text)
	}
	b = append(b, `","segments":[`...)
	for i, s := range p.Segments {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendJSONInt(b, len(s.Text))
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

// preparedLine is a prepared line as stored, in either form.
type preparedLine struct {
	ID         string        `json:"id"`
	Source     Source        `json:"source"`
	Split      Split         `json:"split"`
	Shape      Shape         `json:"shape"`
	Template   string        `json:"template"`
	Augmented  bool          `json:"augmented"`
	Text       string        `json:"text"`
	Prompt     string        `json:"prompt"`
	Completion string        `json:"completion"`
	Segments   []lineSegment `json:"segments"`
	Tokens     int           `json:"tokens"`
}

// lineSegment is one element of "segments": [length, flags], or an
// object with its own text in the old form.
type lineSegment struct {
	Segment
	span bool
	n    int
}

func (s *lineSegment) UnmarshalJSON(b []byte) error {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 || b[0] != '[' {
		s.span = false
		return json.Unmarshal(b, &s.Segment)
	}
	var v []int
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	if len(v) != 2 || v[0] < 0 || v[1] < 0 || v[1] > segTrain|segSpecial {
		return fmt.Errorf("segment %s: want [length, flags] with length ≥ 0 and flags 0–3", b)
	}
	*s = lineSegment{Segment: Segment{Train: v[1]&segTrain != 0, Special: v[1]&segSpecial != 0}, span: true, n: v[0]}
	return nil
}

// UnmarshalJSON reads a prepared line in either form. Segments stored as
// lengths become substrings of Text, so they share its memory; Prompt and
// Completion, when the line lacks them, are derived as Prepare did.
func (p *PreparedExample) UnmarshalJSON(b []byte) error {
	var l preparedLine
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*p = PreparedExample{
		ID: l.ID, Source: l.Source, Split: l.Split, Shape: l.Shape, Template: l.Template,
		Augmented: l.Augmented, Text: l.Text, Prompt: l.Prompt, Completion: l.Completion, Tokens: l.Tokens,
	}
	if len(l.Segments) == 0 {
		if l.Text != "" {
			return errors.New("a text without segments")
		}
		return nil
	}
	p.Segments = make([]Segment, len(l.Segments))
	off := 0
	for i, s := range l.Segments {
		if s.span != l.Segments[0].span {
			return errors.New("segments mix [length, flags] and {text, train} forms")
		}
		if !s.span {
			p.Segments[i] = s.Segment
			continue
		}
		end := off + s.n
		if end > len(l.Text) {
			return fmt.Errorf("segments cover more than the text's %d bytes", len(l.Text))
		}
		if end < len(l.Text) && !utf8.RuneStart(l.Text[end]) {
			return fmt.Errorf("segment %d ends inside a character (byte %d of the text)", i, end)
		}
		s.Text = l.Text[off:end]
		p.Segments[i] = s.Segment
		off = end
	}
	if l.Segments[0].span && off != len(l.Text) {
		return fmt.Errorf("segments cover %d bytes, the text has %d", off, len(l.Text))
	}
	if p.Prompt == "" && p.Completion == "" && p.Shape != ShapeText {
		p.Prompt, p.Completion = promptCompletion(p.Segments)
	}
	return nil
}
