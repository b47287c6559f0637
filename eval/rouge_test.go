package eval

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRougeTokenize(t *testing.T) {
	cases := []struct {
		in   string
		stem bool
		want []string
		why  string
	}{
		{"The quick-brown fox's 2nd run!", false, []string{"the", "quick", "brown", "fox", "s", "2nd", "run"}, "non [a-z0-9] separates"},
		{"Running dogs happily", true, []string{"run", "dog", "happili"}, "stems tokens longer than 3"},
		{"cats ran", true, []string{"cat", "ran"}, "cats (4 letters) is stemmed, ran (3) is not"},
		{"café naïve", false, []string{"caf", "na", "ve"}, "non-ASCII letters are separators, as in rouge-score"},
		{"北京", false, nil, "no ASCII tokens at all"},
		{"", false, nil, "empty"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, RougeTokenize(c.in, c.stem), c.why)
	}
}

// The expected values below are worked by hand from rouge-score's
// definitions: recall against the target, precision against the prediction.
func TestRougeScorer(t *testing.T) {
	scorer := RougeScorer{Types: []string{"rouge1", "rouge2", RougeL, RougeLsum}}
	// target [the cat sat on the mat] (6), prediction [the mat sat on the cat] (6).
	got, err := scorer.Score("The cat sat on the mat.", "the mat sat on the cat")
	require.NoError(t, err)
	// Unigrams: all 6 shared.
	assert.Equal(t, RougeScore{1, 1, 1}, got["rouge1"])
	// Bigrams: target {the cat, cat sat, sat on, on the, the mat},
	// prediction {the mat, mat sat, sat on, on the, the cat}: 4 of 5 shared.
	assert.InDelta(t, 0.8, got["rouge2"].FMeasure, 1e-12)
	// LCS: "the sat on the", length 4 of 6 on each side.
	assert.InDelta(t, 4.0/6, got[RougeL].Recall, 1e-12)
	assert.InDelta(t, 4.0/6, got[RougeL].Precision, 1e-12)
	// One sentence on each side: ROUGE-Lsum equals ROUGE-L.
	assert.InDelta(t, got[RougeL].FMeasure, got[RougeLsum].FMeasure, 1e-12)

	// rouge3: trigrams of a 2-token prediction: none, precision 0/1.
	got, err = RougeScorer{Types: []string{"rouge3"}}.Score("a b c", "a b")
	require.NoError(t, err)
	assert.Equal(t, RougeScore{}, got["rouge3"])
}

func TestRougeScoreMulti(t *testing.T) {
	scorer := RougeScorer{Types: []string{"rouge1"}}
	got, err := scorer.ScoreMulti([]string{"dog", "the cat sat", "cat"}, "cat")
	require.NoError(t, err)
	// F against "cat" is 1, the best of the three.
	assert.Equal(t, RougeScore{1, 1, 1}, got["rouge1"])

	// A tie keeps the first target. Prediction [a b] against [a]: P 1/2,
	// R 1; against [a b c d]: P 1, R 1/2. Both have F = 2/3.
	got, err = scorer.ScoreMulti([]string{"a", "a b c d"}, "a b")
	require.NoError(t, err)
	assert.InDelta(t, 0.5, got["rouge1"].Precision, 1e-12, "the first target wins the tie")
	assert.InDelta(t, 1.0, got["rouge1"].Recall, 1e-12)

	_, err = scorer.ScoreMulti(nil, "a")
	assert.True(t, errors.Is(err, ErrNoReferences))
}

func TestRougeTypes(t *testing.T) {
	for _, typ := range []string{"rouge0", "rouge10", "rougeX", "rouge", "bleu"} {
		_, err := RougeScorer{Types: []string{typ}}.Score("a", "a")
		assert.True(t, errors.Is(err, ErrRougeType), typ)
	}
	for _, typ := range []string{"rouge1", "rouge9", RougeL, RougeLsum} {
		_, err := RougeScorer{Types: []string{typ}}.Score("a", "a")
		assert.NoError(t, err, typ)
	}
}

func TestRougeLsumSentences(t *testing.T) {
	// Lin (2004) section 3.2's example: reference w1..w5, candidate
	// sentences [w1 w2 w6 w7 w8] and [w1 w3 w8 w9 w5]. Union LCS is
	// w1 w2 w3 w5: recall 4/5, precision 4/10. Empty lines are ignored.
	got, err := RougeScorer{Types: []string{RougeLsum}}.Score("w1 w2 w3 w4 w5\n\n", "w1 w2 w6 w7 w8\n\nw1 w3 w8 w9 w5")
	require.NoError(t, err)
	assert.InDelta(t, 0.8, got[RougeLsum].Recall, 1e-12)
	assert.InDelta(t, 0.4, got[RougeLsum].Precision, 1e-12)
}
