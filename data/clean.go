package data

import (
	"html"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// CleanText normalises one text field: invalid UTF-8 becomes U+FFFD, HTML
// tags and entities are removed (unless keepHTML), the text is put in Unicode
// NFC, control and zero-width characters are dropped, line endings become
// "\n", runs of spaces inside a line collapse to one (leading indentation is
// kept, for code), trailing spaces go, at most one blank line is kept in a
// row, and the whole is trimmed.
func CleanText(s string, keepHTML bool) string {
	if isClean(s, keepHTML) {
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
	// Often the markup was all there was to fix; what is left is checked
	// as text ('<' and '&' now are text, hence keepHTML).
	if isClean(s, true) {
		return s
	}
	// NFC last: dropping a control character can bring a base letter and a
	// combining mark together, which only then compose.
	t, inert := tidySpace(s)
	if inert {
		return t
	}
	return norm.NFC.String(t)
}

// textClass and htmlClass sort bytes for isClean: cleanPlain for printable
// ASCII other than space (and other than '<' and '&' unless HTML is kept),
// cleanSpace for the space, 0 for the rest.
var textClass, htmlClass = func() (t, h [256]uint8) {
	for c := '!'; c < 0x7f; c++ {
		h[c] = cleanPlain
		if c != '<' && c != '&' {
			t[c] = cleanPlain
		}
	}
	t[' '], h[' '] = cleanSpace, cleanSpace
	return t, h
}()

const (
	cleanPlain = 1
	cleanSpace = 2
)

// isClean is the fast path: most fields in real datasets need no change,
// and checking is much cheaper than rebuilding.
func isClean(s string, keepHTML bool) bool {
	if s == "" {
		return true
	}
	if s[0] == ' ' || s[0] == '\n' || s[len(s)-1] == ' ' || s[len(s)-1] == '\n' {
		return false
	}
	class := &textClass
	if keepHTML {
		class = &htmlClass
	}
	lineStart := true
	inert := true // every rune so far is one NFC leaves as it is, whatever its neighbours
	var prev, prev2 byte
	for i := 0; i < len(s); {
		c := s[i]
		if class[c] == cleanPlain {
			// Words and the single spaces between them, without a branch
			// per word: a byte continues the run if it is plain, or a space
			// after a plain byte (class[prev]<<1 is cleanSpace then).
			for i++; i < len(s) && class[s[i]]&(cleanPlain|class[s[i-1]]<<1) != 0; i++ {
			}
			// What follows asks only whether prev is a space or a newline,
			// and prev2 only when prev is a newline.
			lineStart, prev2, prev = false, 'a', s[i-1]
			continue
		}
		switch {
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			if (r == utf8.RuneError && n == 1) || isHSpace(r) || dropRune(r) || r == '\u2028' || r == '\u2029' {
				return false
			}
			i += n
			inert = inert && nfcInert(r)
			lineStart, prev2, prev = false, prev, 'a'
			continue
		case c == '\n':
			if prev == ' ' || (prev == '\n' && prev2 == '\n') {
				return false
			}
			lineStart = true
		case c == ' ':
			if prev == ' ' && !lineStart {
				return false
			}
		default:
			return false // controls, tabs, CR, DEL, and markup to strip
		}
		prev2, prev = prev, c
		i++
	}
	return inert || norm.NFC.IsNormalString(s)
}

// nfcInert reports runes that are in NFC and never compose with a rune
// before them, so a string of them (and ASCII) is in NFC without asking
// the norm tables: Latin-1 and Latin Extended letters, general
// punctuation (dashes, quotes), CJK ideographs and Hangul syllables, the
// non-ASCII text of most datasets. TestNFCInert checks every rune listed.
func nfcInert(r rune) bool {
	switch {
	case r < 0x300:
		return true
	case r < 0x2010:
		return false
	case r <= 0x2027:
		return true
	case r < 0x2030:
		return false
	case r <= 0x205e:
		return true
	}
	return (r >= 0x4e00 && r <= 0x9fff) || (r >= 0xac00 && r <= 0xd7a3)
}

// isHSpace reports horizontal whitespace: tab and the Unicode space
// separators (category Zs), listed so the common ASCII case is one compare.
func isHSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\u00a0', '\u1680', '\u202f', '\u205f', '\u3000':
		return true
	}
	return r >= '\u2000' && r <= '\u200a'
}

// tidySpace applies the character and whitespace rules of CleanText to
// valid UTF-8, and reports whether every rune of the result is nfcInert
// (then it needs no NFC pass). Runs of printable ASCII are copied whole.
func tidySpace(s string) (string, bool) {
	var b strings.Builder
	b.Grow(len(s))
	var indent []byte // leading whitespace of the current line, written only if the line has text
	newlines := 0
	lineStart := true
	pendingSpace := false
	inert := true
	for i := 0; i < len(s); {
		c := s[i]
		r, n := rune(c), 1
		if c >= utf8.RuneSelf {
			r, n = utf8.DecodeRuneInString(s[i:])
		}
		switch {
		case r == '\n' || r == '\u2028' || r == '\u2029':
			newlines++
			lineStart, pendingSpace, indent = true, false, indent[:0]
		case isHSpace(r):
			if !lineStart {
				pendingSpace = true
			} else if r == '\t' {
				indent = append(indent, '\t')
			} else {
				indent = append(indent, ' ')
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
					b.Write(indent)
				} else if pendingSpace {
					b.WriteByte(' ')
				}
			}
			newlines, lineStart, pendingSpace = 0, false, false
			j := i + n
			if c < utf8.RuneSelf {
				for j < len(s) && s[j] > ' ' && s[j] < 0x7f {
					j++
				}
			} else {
				inert = inert && nfcInert(r)
			}
			b.WriteString(s[i:j])
			i = j
			continue
		}
		i += n
	}
	return b.String(), inert
}

// dropRune reports characters that carry no text: C0/C1 controls and the
// invisible format characters that break de-duplication and tokenization
// (zero-width space, BOM, soft hyphen, word joiner). Joiners used by emoji
// and bidirectional marks are kept because they change meaning.
func dropRune(r rune) bool {
	switch r {
	case '\u200b', '\ufeff', '\u00ad', '\u2060':
		return true
	}
	return r < 0x20 || (r >= 0x7f && r <= 0x9f)
}

// tagKind reports whether name is an HTML element stripTags removes and
// whether it is block-level (replaced by a line break). Only real HTML names
// count, so text such as "a <b c" or "List<T>" in code survives.
func tagKind(name string) (known, block bool) {
	switch name {
	case "a", "abbr", "b", "big", "cite", "code", "em", "font", "i", "img", "kbd", "mark",
		"s", "small", "span", "strike", "strong", "sub", "sup", "u", "var", "meta", "link",
		"input", "label", "button", "td", "th", "html", "head", "body", "title", "script", "style":
		return true, false
	case "br", "p", "div", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "thead", "tbody",
		"tfoot", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "pre", "blockquote", "section",
		"article", "header", "footer", "nav", "aside", "main", "figure", "figcaption",
		"center", "form", "iframe", "caption":
		return true, true
	}
	return false, false
}

// stripTags removes HTML comments, known tags and script/style elements;
// block-level tags become line breaks so paragraphs stay apart.
func stripTags(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	i := 0
	for {
		j := strings.IndexByte(s[i:], '<')
		if j < 0 {
			b.WriteString(s[i:])
			return b.String()
		}
		j += i
		b.WriteString(s[i:j])
		end, repl := matchTag(s, j)
		if end < 0 {
			b.WriteByte('<')
			i = j + 1
			continue
		}
		b.WriteString(repl)
		i = end
	}
}

// maxTagLen bounds the attribute scan so a lone "<p" in prose cannot swallow
// the rest of a long document.
const maxTagLen = 2048

// matchTag returns the end of the markup starting at s[i] == '<' and its
// replacement, or -1 when it is not markup.
func matchTag(s string, i int) (int, string) {
	rest := s[i:]
	if strings.HasPrefix(rest, "<!--") {
		if k := strings.Index(rest[4:], "-->"); k >= 0 {
			return i + 4 + k + 3, ""
		}
		return -1, ""
	}
	p := 1
	closing := false
	if p < len(rest) && rest[p] == '/' {
		closing = true
		p++
	}
	start := p
	for p < len(rest) && p-start < 12 && isAlnum(rest[p]) {
		p++
	}
	if p == start || p >= len(rest) || !isAlpha(rest[start]) {
		return -1, ""
	}
	name := strings.ToLower(rest[start:p])
	known, block := tagKind(name)
	if !known {
		return -1, ""
	}
	if c := rest[p]; c != '>' && c != '/' && c != ' ' && c != '\t' && c != '\n' {
		return -1, ""
	}
	end := tagEnd(rest, p)
	if end < 0 {
		return -1, ""
	}
	if !closing && (name == "script" || name == "style") {
		// The element's body is code, not text: drop it through its end tag.
		lower := strings.ToLower(rest[end:])
		k := strings.Index(lower, "</"+name)
		if k < 0 {
			return i + len(rest), ""
		}
		if e := tagEnd(rest, end+k+2+len(name)); e >= 0 {
			return i + e, ""
		}
		return i + len(rest), ""
	}
	if block {
		return i + end, "\n"
	}
	if name == "td" || name == "th" {
		return i + end, " "
	}
	return i + end, ""
}

// tagEnd finds the '>' closing a tag whose attributes start at rest[p],
// honouring quoted attribute values; -1 if none within maxTagLen.
func tagEnd(rest string, p int) int {
	var quote byte
	for ; p < len(rest) && p < maxTagLen; p++ {
		c := rest[p]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '<':
			return -1
		case c == '>':
			return p + 1
		}
	}
	return -1
}

func isAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }
func isAlnum(c byte) bool { return isAlpha(c) || (c >= '0' && c <= '9') }

// fnv64 constants: FNV-1a is simple, fast on short strings and, unlike
// hash/maphash, the same in every process, which the split needs.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func fnvByte(h uint64, c byte) uint64 {
	h ^= uint64(c)
	return h * fnvPrime
}

// asciiFold maps a byte to what the folded form keeps of it: the
// lower-case letter or the digit, ' ' for ASCII whitespace, 0 for ASCII
// punctuation, symbols and controls (dropped), and foldRune for the bytes
// of multi-byte runes. One table load replaces a chain of compares in the
// loop every byte of every record goes through.
var asciiFold = func() (t [256]byte) {
	for c := range 256 {
		switch {
		case c >= utf8.RuneSelf:
			t[c] = foldRune
		case c >= 'A' && c <= 'Z':
			t[c] = byte(c) + 'a' - 'A'
		case (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'):
			t[c] = byte(c)
		case c == ' ' || c == '\n' || c == '\t' || c == '\r':
			t[c] = ' '
		}
	}
	return t
}()

// foldClass sorts bytes for foldHash's inner loop: foldLetter for ASCII
// letters and digits, foldSpace for ASCII whitespace, 0 for the rest.
var foldClass = func() (t [256]uint8) {
	for c, f := range asciiFold {
		switch {
		case f > ' ':
			t[c] = foldLetter
		case f == ' ':
			t[c] = foldSpace
		}
	}
	return t
}()

const (
	foldLetter = 1
	foldSpace  = 2
)

// foldRune marks, in asciiFold, a byte that starts (or continues) a
// multi-byte rune: 1 is no letter, digit or space.
const foldRune = 1

// foldHash hashes the folded form of s: lower case, punctuation and symbols
// removed, whitespace runs as one separator. Hashing while folding avoids
// building the folded string for every record.
func foldHash(h uint64, s string) uint64 {
	space := false
	wrote := false
	var buf [utf8.UTFMax]byte
	for i := 0; i < len(s); {
		switch f := asciiFold[s[i]]; {
		case f > ' ': // a letter or digit: hash it and the rest of its word
			if space && wrote {
				h = fnvByte(h, ' ')
			}
			space, wrote = false, true
			h = fnvByte(h, f)
			// The rest of the word, and the words after it that single
			// ASCII whitespace separates, in one loop whose only branch is
			// its end: a whitespace byte continues it (hashed as ' ') when
			// a letter or digit follows.
			for i++; i < len(s); i++ {
				var next uint8
				if i+1 < len(s) {
					next = foldClass[s[i+1]]
				}
				if foldClass[s[i]]&(foldLetter|next<<1) == 0 {
					break
				}
				h = fnvByte(h, asciiFold[s[i]])
			}
			continue
		case f == ' ':
			space = true
			i++
			continue
		case f == 0:
			i++
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

// foldedHash is the normalised hash of an example's content (roles,
// turns, input, text): the key of the split, of ids and of normalised
// de-duplication.
func foldedHash(ex *Example) uint64 {
	h := uint64(fnvOffset)
	if ex.IsText() {
		return fnvByte(foldHash(fnvByte(h, 't'), ex.Text), 0)
	}
	for _, m := range ex.Messages {
		h = fnvByte(foldHash(fnvByte(h, m.Role[0]), m.Content), 0)
	}
	return fnvByte(foldHash(fnvByte(h, 'i'), ex.Input), 0)
}

// exactHash is the hash of the same content as cleaned, for exact
// de-duplication only (the other modes skip it: it is a pass over every
// byte).
func exactHash(ex *Example) uint64 {
	h := uint64(fnvOffset)
	if ex.IsText() {
		return fnvByte(fnvString(fnvByte(h, 't'), ex.Text), 0)
	}
	for _, m := range ex.Messages {
		h = fnvByte(fnvString(fnvByte(h, m.Role[0]), m.Content), 0)
	}
	return fnvByte(fnvString(fnvByte(h, 'i'), ex.Input), 0)
}
