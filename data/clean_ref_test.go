package data

import (
	"html"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// cleanTextRef is CleanText as first written (a rune at a time, NFC
// checked on every non-ASCII field): the faster CleanText must agree with
// it on every input (TestCleanTextMatchesReference, FuzzCleanText).
func cleanTextRef(s string, keepHTML bool) string {
	if isCleanRef(s, keepHTML) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !keepHTML {
		if strings.IndexByte(s, '<') >= 0 {
			s = stripTags(s)
		}
		if strings.IndexByte(s, '&') >= 0 {
			s = html.UnescapeString(s)
		}
	}
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	// NFC last: dropping a control character can bring a base letter and a
	// combining mark together, which only then compose.
	return norm.NFC.String(tidySpaceRef(s))
}

func isCleanRef(s string, keepHTML bool) bool {
	if s == "" {
		return true
	}
	if s[0] == ' ' || s[0] == '\n' || s[len(s)-1] == ' ' || s[len(s)-1] == '\n' {
		return false
	}
	lineStart := true
	ascii := true
	var prev, prev2 byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			if (r == utf8.RuneError && n == 1) || isHSpace(r) || dropRune(r) || r == '\u2028' || r == '\u2029' {
				return false
			}
			i += n - 1
			ascii, lineStart = false, false
			c = 'a' // any letter: what matters below is that it is not a space
		case c == 0x7f:
			return false
		case c == '\n':
			if prev == ' ' || (prev == '\n' && prev2 == '\n') {
				return false
			}
			lineStart = true
		case c < 0x20:
			return false // tabs, CR and other controls take the slow path
		case c == ' ':
			if prev == ' ' && !lineStart {
				return false
			}
		case (c == '<' || c == '&') && !keepHTML:
			return false
		default:
			lineStart = false
		}
		prev2, prev = prev, c
	}
	return ascii || norm.NFC.IsNormalString(s)
}

func tidySpaceRef(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	var indent []rune // leading whitespace of the current line, written only if the line has text
	newlines := 0
	lineStart := true
	pendingSpace := false
	for _, r := range s {
		switch {
		case r == '\n' || r == '\u2028' || r == '\u2029':
			newlines++
			lineStart, pendingSpace, indent = true, false, indent[:0]
		case isHSpace(r):
			if lineStart {
				if r != '\t' {
					r = ' '
				}
				indent = append(indent, r)
			} else {
				pendingSpace = true
			}
		case dropRune(r):
		default:
			if b.Len() > 0 {
				for ; newlines > 0 && newlines <= 2; newlines-- {
					b.WriteByte('\n')
				}
				if newlines > 2 {
					b.WriteString("\n\n")
				}
				if lineStart {
					for _, ir := range indent {
						b.WriteRune(ir)
					}
				} else if pendingSpace {
					b.WriteByte(' ')
				}
			}
			newlines, lineStart, pendingSpace = 0, false, false
			b.WriteRune(r)
		}
	}
	return b.String()
}

// foldHashRef is foldHash as first written, a compare chain per byte; it
// hashes the folded form of s: lower case, punctuation and symbols
// removed, whitespace runs as one separator. Hashing while folding avoids
// building the folded string for every record.
func foldHashRef(h uint64, s string) uint64 {
	space := false
	wrote := false
	var buf [utf8.UTFMax]byte
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			case (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'):
			case c == ' ' || c == '\n' || c == '\t' || c == '\r':
				space = true
				continue
			default:
				continue // ASCII punctuation, symbols, controls
			}
			if space && wrote {
				h = fnvByte(h, ' ')
			}
			space, wrote = false, true
			h = fnvByte(h, c)
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case unicode.IsSpace(r):
			space = true
			continue
		case unicode.IsPunct(r) || unicode.IsSymbol(r) || dropRune(r):
			continue
		}
		if space && wrote {
			h = fnvByte(h, ' ')
		}
		space, wrote = false, true
		n = utf8.EncodeRune(buf[:], unicode.ToLower(r))
		for _, b := range buf[:n] {
			h = fnvByte(h, b)
		}
	}
	return h
}
