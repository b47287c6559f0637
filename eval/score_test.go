package eval

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScore(t *testing.T) {
	preds := []string{"Paris", "the cat sat on the mat today", ""}
	refs := [][]string{{"Paris"}, {"the cat sat on the mat"}, {"x", "y"}}
	table, err := Score(preds, refs, ScoreOptions{})
	require.NoError(t, err)

	assert.Equal(t, 3, table.Examples)
	assert.Equal(t, 4, table.References)
	assert.Equal(t, 1, table.EmptyPredictions)
	assert.Equal(t, 1, table.ExactMatches)
	// EM: 1, 0, 0.
	assert.InDelta(t, 100.0/3, table.ExactMatch, 1e-9)
	// F1: 1; [cat sat on mat today] vs [cat sat on mat] gives P 4/5, R 1,
	// F1 8/9; an empty prediction against non-empty references gives 0.
	assert.InDelta(t, 100*(1+8.0/9)/3, table.F1, 1e-9)
	// Corpus BLEU sums the segments: sys 1+7+0 = 8, ref 1+6+1 = 8 (closest
	// of x, y), matches 1+6 of 8 unigrams, 0+5 of 6 bigrams, 4 of 5
	// trigrams, 3 of 4 4-grams; BP 1.
	assert.InDelta(t, 100*math.Pow(7.0/8*5.0/6*4.0/5*3.0/4, 0.25), table.BLEU.Score, 1e-9)
	assert.Equal(t, 8, table.BLEU.SysLen)
	assert.Equal(t, 8, table.BLEU.RefLen)
	// ROUGE-1 F: 1; [the cat sat on the mat today] vs 6 target tokens:
	// P 6/7, R 1, F 12/13; 0.
	assert.InDelta(t, 100*(1+12.0/13)/3, table.Rouge1, 1e-9)
	// ROUGE-2 F: a one-word text has no bigrams, so 0; then P 5/6, R 1,
	// F 10/11; 0.
	assert.InDelta(t, 100*(10.0/11)/3, table.Rouge2, 1e-9)
	// ROUGE-L: the LCS is the whole target, as for ROUGE-1.
	assert.InDelta(t, table.Rouge1, table.RougeL, 1e-9)
	assert.InDelta(t, table.Rouge1, table.RougeLsum, 1e-9)

	// The table serializes with stable snake_case keys.
	data, err := json.Marshal(table)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	for _, k := range []string{"examples", "references", "empty_predictions", "exact_matches", "exact_match", "f1", "bleu", "rouge1", "rouge2", "rougeL", "rougeLsum"} {
		assert.Contains(t, m, k)
	}
	assert.Contains(t, m["bleu"], "sys_len")
}

func TestScoreExamples(t *testing.T) {
	ex := []Example{{ID: "1", Prediction: "a cat", References: []string{"the cat"}}}
	table, err := ScoreExamples(ex, ScoreOptions{})
	require.NoError(t, err)
	assert.Equal(t, 100.0, table.ExactMatch)
}

func TestScoreExample(t *testing.T) {
	got, err := ScoreExample("The cats ran.", []string{"the cat ran"}, ScoreOptions{RougeStem: true})
	require.NoError(t, err)
	// With stemming, cats→cat, so ROUGE-1 is perfect; EM is not (cats≠cat).
	assert.Equal(t, 1.0, got.Rouge1.FMeasure)
	assert.Equal(t, 0.0, got.ExactMatch)
	// [cats ran] vs [cat ran]: P = R = 1/2.
	assert.InDelta(t, 0.5, got.F1, 1e-12)
}

func TestScoreErrors(t *testing.T) {
	_, err := Score(nil, nil, ScoreOptions{})
	assert.True(t, errors.Is(err, ErrEmptyCorpus))
	_, err = Score([]string{"a"}, [][]string{{"a"}, {"b"}}, ScoreOptions{})
	assert.Error(t, err)
	_, err = Score([]string{"a"}, [][]string{{}}, ScoreOptions{})
	assert.True(t, errors.Is(err, ErrNoReferences))
	_, err = Score([]string{"a"}, [][]string{{"a"}}, ScoreOptions{BLEU: BLEUOptions{Tokenize: "ja-mecab"}})
	assert.True(t, errors.Is(err, ErrUnknownTokenizer))
}
