package eval

import (
	"strings"
	"unicode/utf8"
)

// squadPunctuation is Python's string.punctuation: the ASCII punctuation
// that SQuAD's evaluation script deletes. Non-ASCII punctuation is kept,
// as the script keeps it.
const squadPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// NormalizeAnswer normalizes an answer the way SQuAD's official evaluation
// script does before comparing: lower-case, delete ASCII punctuation,
// replace the words "a", "an" and "the" with a space, then collapse runs of
// whitespace to one space and trim the ends.
func NormalizeAnswer(s string) string {
	s = pyLower(s)
	s = strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf && strings.ContainsRune(squadPunctuation, r) {
			return -1
		}
		return r
	}, s)
	s = removeArticles(s)
	return strings.Join(pyFields(s), " ")
}

// removeArticles replaces each whole word "a", "an" or "the" with a space,
// as the script's re.sub(r'\b(a|an|the)\b', ' ', text) does. Python's \b is
// Unicode-aware ("thé" is one word) while Go's regexp \b is ASCII-only, so
// the words are found by scanning for runs of Python word characters.
func removeArticles(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !pyIsWordChar(r) {
			b.WriteString(s[i : i+size])
			i += size
			continue
		}
		j := i
		for j < len(s) {
			r, size := utf8.DecodeRuneInString(s[j:])
			if !pyIsWordChar(r) {
				break
			}
			j += size
		}
		switch word := s[i:j]; word {
		case "a", "an", "the":
			b.WriteByte(' ')
		default:
			b.WriteString(word)
		}
		i = j
	}
	return b.String()
}

// answerTokens returns the whitespace tokens of the normalized answer.
func answerTokens(s string) []string {
	return pyFields(NormalizeAnswer(s))
}
