package eval

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// BLEUTokenizer names one of sacreBLEU's tokenizers.
type BLEUTokenizer string

// The tokenizers CorpusBLEU supports; the empty name means Tokenizer13a.
const (
	// Tokenizer13a is mteval-v13a's tokenization, sacreBLEU's default.
	Tokenizer13a BLEUTokenizer = "13a"
	// TokenizerNone splits on whitespace only.
	TokenizerNone BLEUTokenizer = "none"
	// TokenizerIntl is mteval-v14's international tokenization, which
	// splits Unicode punctuation and symbols.
	TokenizerIntl BLEUTokenizer = "intl"
	// TokenizerChar makes every character a token, for languages written
	// without spaces.
	TokenizerChar BLEUTokenizer = "char"
)

// ErrUnknownTokenizer is returned for a tokenizer name sacreBLEU's
// tokenizers here do not include.
var ErrUnknownTokenizer = errors.New("unknown BLEU tokenizer (want 13a, none, intl or char)")

// resolve returns the function that tokenizes one line for t.
func (t BLEUTokenizer) resolve() (func(string) string, error) {
	switch t {
	case "", Tokenizer13a:
		return Tokenize13a, nil
	case TokenizerNone:
		return func(s string) string { return s }, nil
	case TokenizerIntl:
		return TokenizeIntl, nil
	case TokenizerChar:
		return TokenizeChar, nil
	}
	return nil, fmt.Errorf("%q: %w", string(t), ErrUnknownTokenizer)
}

// intlRules are mteval-v14's international tokenization rules as sacreBLEU
// writes them, applied in order.
var intlRules = []struct {
	re   *regexp.Regexp
	repl string
}{
	// Split punctuation preceded by a non-digit.
	{regexp.MustCompile(`(\P{N})(\p{P})`), "${1} ${2} "},
	// Split punctuation followed by a non-digit.
	{regexp.MustCompile(`(\p{P})(\P{N})`), " ${1} ${2}"},
	// Split every symbol.
	{regexp.MustCompile(`(\p{S})`), " ${1} "},
}

// TokenizeIntl tokenizes one line as sacreBLEU's "intl" tokenizer does:
// Unicode punctuation is split off unless it sits between digits, and
// Unicode symbols are always split off. Unlike 13a, HTML entities are not
// unescaped and the line is not padded, so a number followed by a
// sentence-final period keeps the period, as in mteval-v14.
func TokenizeIntl(line string) string {
	for _, rule := range intlRules {
		line = rule.re.ReplaceAllString(line, rule.repl)
	}
	return strings.Join(pyFields(line), " ")
}

// TokenizeChar tokenizes one line as sacreBLEU's "char" tokenizer does:
// every Unicode code point becomes a token (whitespace included, which the
// n-gram extraction then drops).
func TokenizeChar(line string) string {
	var b strings.Builder
	b.Grow(2 * len(line))
	for i, r := range []rune(line) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}
