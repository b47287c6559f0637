package bindings

import (
	"strings"
	"unicode/utf8"
)

// TextStream turns token pieces into output text: it holds back bytes of an unfinished
// UTF-8 character and any tail that may start a stop string, and cuts at a stop string.
// NewTextStream returns a TextStream that cuts the output before the first of stops.
func NewTextStream(stops []string) *TextStream { return &TextStream{stops: stops} }

// TextStream is safe for one goroutine at a time.
type TextStream struct {
	stops   []string
	partial []byte // trailing bytes of an unfinished UTF-8 character
	held    string // complete text that may be the start of a stop string
}

// Push adds a piece and returns the text that can be released now, and whether a stop
// string was found (the text then ends just before it).
func (s *TextStream) Push(piece string) (string, bool) {
	s.partial = append(s.partial, piece...)
	cut := completeUTF8(s.partial)
	text := s.held + string(s.partial[:cut])
	s.partial = append(s.partial[:0], s.partial[cut:]...)
	s.held = ""

	for _, stop := range s.stops {
		if stop == "" {
			continue
		}
		if i := strings.Index(text, stop); i >= 0 {
			return text[:i], true
		}
	}
	// Hold back the longest tail that is a proper prefix of some stop string.
	hold := 0
	for _, stop := range s.stops {
		for k := min(len(stop)-1, len(text)); k > hold; k-- {
			if strings.HasSuffix(text, stop[:k]) {
				hold = k
				break
			}
		}
	}
	s.held = text[len(text)-hold:]
	return text[:len(text)-hold], false
}

// Flush releases whatever is held back, at the end of a generation.
func (s *TextStream) Flush() string {
	text := s.held + string(s.partial)
	s.held, s.partial = "", nil
	return text
}

// completeUTF8 returns the length of b without a trailing unfinished (but so far valid)
// UTF-8 sequence; invalid bytes are not held back.
func completeUTF8(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if !utf8.RuneStart(b[i]) {
			continue
		}
		if !utf8.FullRune(b[i:]) {
			return i
		}
		break
	}
	return len(b)
}
