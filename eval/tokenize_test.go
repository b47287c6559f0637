package eval

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestTokenize13a checks mteval-v13a's rules, each case worked by hand
// from the regular expressions in tokenize13a.go.
func TestTokenize13a(t *testing.T) {
	cases := []struct{ in, want, why string }{
		{"Hello, world!", "Hello , world !", "comma after a letter, ! always split"},
		{"It costs $3.50, or 3,5 EUR.", "It costs $ 3.50 , or 3,5 EUR .", "periods and commas between digits stay"},
		{"1990-2000", "1990 - 2000", "hyphen after a digit splits"},
		{"well-known", "well-known", "hyphen between letters stays"},
		{"don't", "don't", "apostrophe is not split"},
		{"end in 1990.", "end in 1990 .", "the padding space lets a final period after a digit split"},
		{"&quot;Hi&quot; &amp; bye &lt;b&gt;", `" Hi " & bye < b >`, "entities unescaped, then split"},
		{"&amp;quot;", "& quot ;", "unescaping is sequential: &amp;quot; becomes &quot; and stays"},
		{"foo<skipped> bar", "foo bar", "<skipped> removed"},
		{"hyphen-\nated word\nnext", "hyphenated word next", "-\\n joins, \\n is a space"},
		{"  many   spaces\t", "many spaces", "whitespace collapsed"},
		{"Producția de zahăr", "Producția de zahăr", "non-ASCII letters are untouched"},
		{"我喜欢猫。你呢？", "我喜欢猫。你呢？", "13a only knows ASCII punctuation"},
		{"", "", "empty"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, Tokenize13a(c.in), c.why)
	}
}

// TestTokenizeIntl checks mteval-v14's international rules by hand.
func TestTokenizeIntl(t *testing.T) {
	cases := []struct{ in, want, why string }{
		{"我喜欢猫。你呢？", "我喜欢猫 。 你呢 ？", "Unicode punctuation after a non-digit splits"},
		{"end in 1990.", "end in 1990.", "as in mteval-v14, a period after a digit at the end stays"},
		{"3.5 and 3,000", "3.5 and 3,000", "punctuation between digits stays"},
		{"don't", "don ' t", "apostrophe is punctuation"},
		{"a+b=c €5", "a + b = c € 5", "symbols always split"},
		{"&quot;", "& quot ;", "no entity unescaping"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, TokenizeIntl(c.in), c.why)
	}
}

func TestTokenizeChar(t *testing.T) {
	assert.Equal(t, "猫 が 好 き", TokenizeChar("猫が好き"))
	assert.Equal(t, "é t é", TokenizeChar("été"))
	assert.Equal(t, "a   b", TokenizeChar("a b"), "the space is a character too; n-gram extraction drops it")
	assert.Equal(t, "", TokenizeChar(""))
}

func TestPyLower(t *testing.T) {
	cases := []struct{ in, want, why string }{
		{"ABC", "abc", "ASCII"},
		{"ÉCLAIR Ünïcode", "éclair ünïcode", "Latin letters"},
		{"ΟΔΟΣ ΣΑΣ", "οδος σας", "Python lower-cases a word-final capital sigma to ς"},
		{"Σ", "σ", "a lone sigma has no cased letter before it"},
		{"İ", "i\u0307", "capital I with dot becomes i plus combining dot"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, pyLower(c.in), c.why)
	}
}

func TestPyFields(t *testing.T) {
	// Python's str.split() also splits on the separators U+001C..U+001F.
	assert.Equal(t, []string{"a", "b", "c", "d"}, pyFields(" a\x1fb\u00a0c\u3000d\n"))
	assert.Equal(t, "a", pyRstrip("a \x1c\t"))
}
