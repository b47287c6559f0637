package eval

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The expected values follow SQuAD's official evaluation script (v1.1
// normalize_answer and f1_score; v2.0's empty-answer rule), worked by hand.

func TestNormalizeAnswer(t *testing.T) {
	cases := []struct{ in, want, why string }{
		{"The Cat!", "cat", "lower, strip punctuation, drop the article"},
		{"  an   apple a day ", "apple day", "articles are whole words only; whitespace collapses"},
		{"U.S.A.", "usa", "punctuation inside words is deleted, not split"},
		{"foo_bar", "foobar", "underscore is in string.punctuation"},
		{"theory anthem", "theory anthem", "article letters inside words stay"},
		{"Thé café", "thé café", "é is a word character to Python, so thé is not an article"},
		{"The Éclair", "éclair", "non-ASCII letters are lower-cased"},
		{"«quoted»", "«quoted»", "non-ASCII punctuation is kept, as the script keeps it"},
		{"a an the", "", "only articles"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, NormalizeAnswer(c.in), c.why)
	}
}

func TestExactMatch(t *testing.T) {
	cases := []struct {
		pred string
		refs []string
		want float64
	}{
		{"The Cat!", []string{"cat"}, 1},
		{"cat", []string{"dog", "a cat."}, 1}, // max over references
		{"cats", []string{"cat"}, 0},
		{"paris", []string{"Paris, France"}, 0},
		{"a", []string{"an"}, 1}, // both normalize to ""
		{"", []string{""}, 1},
		{"cat", nil, 0},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, ExactMatch(c.pred, c.refs...), "%q vs %q", c.pred, c.refs)
	}
}

func TestTokenF1(t *testing.T) {
	cases := []struct {
		name string
		pred string
		refs []string
		want float64
	}{
		// [quick brown fox] vs [quick fox jumps]: 2 shared, P = R = 2/3.
		{"partial overlap", "the quick brown fox", []string{"quick fox jumps"}, 2.0 / 3},
		// [x y y y] vs [y y z]: the bags share y twice, P = 2/4, R = 2/3,
		// F1 = 2PR/(P+R) = (2/3)/(7/6) = 4/7.
		{"multiset overlap", "x y y y", []string{"y y z"}, 4.0 / 7},
		// Best of 0 (london) and 2/3 ([paris] vs [paris france]: P=1, R=1/2).
		{"max over references", "paris", []string{"London", "Paris, France"}, 2.0 / 3},
		{"no overlap", "cat", []string{"dog"}, 0},
		{"identical after normalization", "The Cat!", []string{"cat"}, 1},
		// SQuAD 2.0: two empty answers agree; one empty one does not.
		{"both empty", "", []string{""}, 1},
		{"empty prediction", "", []string{"cat"}, 0},
		{"empty after normalization", "the", []string{"cat"}, 0},
		// [thé café] vs [cafe]: no shared token, accents matter.
		{"accents", "Thé café", []string{"the cafe"}, 0},
		// [北京] vs [北京 市]: whitespace tokens, P = 1, R = 1/2.
		{"CJK", "北京", []string{"北京 市"}, 2.0 / 3},
		{"no references", "cat", nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.InDelta(t, c.want, TokenF1(c.pred, c.refs...), 1e-12)
		})
	}
}
