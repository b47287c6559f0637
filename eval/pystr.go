package eval

import (
	"strings"
	"unicode"
)

// The reference implementations are Python programs, and their results
// depend on how Python's str methods treat Unicode. These helpers reproduce
// the few behaviours where Go's standard library differs, so that a text
// with odd whitespace or Greek capitals scores the same here as there.

// pyIsSpace reports whether Python's str.isspace treats r as whitespace.
// Python counts the ASCII information separators U+001C..U+001F as
// whitespace; unicode.IsSpace does not, and otherwise the two agree.
func pyIsSpace(r rune) bool {
	return (r >= 0x1c && r <= 0x1f) || unicode.IsSpace(r)
}

// pyFields splits s like Python's str.split() with no arguments.
func pyFields(s string) []string {
	return strings.FieldsFunc(s, pyIsSpace)
}

// pyRstrip trims trailing whitespace like Python's str.rstrip().
func pyRstrip(s string) string {
	return strings.TrimRightFunc(s, pyIsSpace)
}

// pyLower lower-cases s like Python's str.lower(). Python applies the full
// Unicode lowercase mapping: U+0130 (capital I with dot) becomes "i" plus a
// combining dot, and a capital sigma at the end of a word becomes the final
// form ς. Every other rune maps as unicode.ToLower maps it.
func pyLower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	runes := []rune(s)
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range runes {
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3a3:
			if finalSigma(runes, i) {
				b.WriteRune(0x3c2)
			} else {
				b.WriteRune(0x3c3)
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma reports whether the capital sigma at runes[i] is in Unicode's
// Final_Sigma context: a cased letter before it and none after it, skipping
// case-ignorable runes on both sides (as CPython does).
func finalSigma(runes []rune, i int) bool {
	j := i - 1
	for j >= 0 && isCaseIgnorable(runes[j]) {
		j--
	}
	if j < 0 || !isCased(runes[j]) {
		return false
	}
	j = i + 1
	for j < len(runes) && isCaseIgnorable(runes[j]) {
		j++
	}
	return j == len(runes) || !isCased(runes[j])
}

// isCased reports Unicode's Cased property: upper, lower or title case.
func isCased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

// isCaseIgnorable approximates Unicode's Case_Ignorable property: marks,
// format characters, modifiers, and the word-internal punctuation of the
// Word_Break classes MidLetter, MidNumLet and Single_Quote.
func isCaseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xb7, 0x387, 0x55f, 0x5f4, 0x2018, 0x2019, 0x2024,
		0x2027, 0xfe13, 0xfe52, 0xfe55, 0xff07, 0xff0e, 0xff1a:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// pyIsWordChar reports whether Python's re module matches r with \w in a
// str pattern: letters, numbers and the underscore.
func pyIsWordChar(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r)
}
