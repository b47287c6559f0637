package eval

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rougeVectors mirrors testdata/rouge/rouge_vectors.json, which
// transcribes rouge-score's rouge/rouge_scorer_test.py.
type rougeVectors struct {
	Inline []struct {
		Target     string   `json:"target"`
		Prediction string   `json:"prediction"`
		Type       string   `json:"type"`
		Precision  float64  `json:"precision"`
		Recall     float64  `json:"recall"`
		FMeasure   float64  `json:"fmeasure"`
		Places     *float64 `json:"places"`
	} `json:"inline_cases"`
	Files []struct {
		Target     string  `json:"target"`
		Prediction string  `json:"prediction"`
		Type       string  `json:"type"`
		Stem       bool    `json:"stem"`
		Precision  float64 `json:"precision"`
		Recall     float64 `json:"recall"`
		FMeasure   float64 `json:"fmeasure"`
		Reference  string  `json:"reference"`
	} `json:"file_cases"`
	LCS []struct {
		Ref        []int   `json:"ref"`
		Cand       []int   `json:"cand"`
		Cands      [][]int `json:"cands"`
		Length     *int    `json:"lcs_length"`
		RefIndices []int   `json:"lcs_ref_indices"`
		UnionLCS   []int   `json:"union_lcs"`
		Recall     float64 `json:"summary_level_recall"`
		Precision  float64 `json:"summary_level_precision"`
	} `json:"lcs_cases"`
}

// placesDelta is the tolerance of Python's assertAlmostEqual(places=p):
// round(a-b, p) == 0, i.e. |a-b| below half a unit in the p-th place.
func placesDelta(places float64) float64 { return 0.5 * math.Pow(10, -places) }

// fixtureText resolves a file_cases reference: "NAME line N" is the N-th
// line of the file including its newline (Python's readlines), "NAME whole
// file" is the whole text.
func fixtureText(t *testing.T, spec string) string {
	t.Helper()
	name, what, ok := strings.Cut(spec, " ")
	require.True(t, ok, "bad file spec %q", spec)
	data, err := os.ReadFile(fixturePath(t, "rouge/"+name))
	require.NoError(t, err)
	text := string(data)
	if what == "whole file" {
		return text
	}
	var n int
	_, err = fmt.Sscanf(what, "line %d", &n)
	require.NoError(t, err, "bad file spec %q", spec)
	lines := strings.SplitAfter(text, "\n")
	require.Less(t, n, len(lines))
	return lines[n]
}

func TestRougeFixtures(t *testing.T) {
	var v rougeVectors
	loadFixtureJSON(t, "rouge/rouge_vectors.json", &v)
	passed := 0
	count := func(ok bool) {
		if ok {
			passed++
		}
	}

	for i, c := range v.Inline {
		t.Run(fmt.Sprintf("inline/%d_%s", i, c.Type), func(t *testing.T) {
			// rouge-score's tests use assertAlmostEqual's default 7 places
			// unless the case says otherwise.
			delta := placesDelta(7)
			if c.Places != nil {
				delta = placesDelta(*c.Places)
			}
			got, err := RougeScorer{Types: []string{c.Type}}.Score(c.Target, c.Prediction)
			require.NoError(t, err)
			s := got[c.Type]
			ok := assert.InDelta(t, c.Precision, s.Precision, delta, "precision")
			ok = assert.InDelta(t, c.Recall, s.Recall, delta, "recall") && ok
			count(assert.InDelta(t, c.FMeasure, s.FMeasure, delta, "fmeasure") && ok)
		})
	}
	for i, c := range v.Files {
		t.Run(fmt.Sprintf("file/%d_%s_stem=%v", i, c.Type, c.Stem), func(t *testing.T) {
			target := fixtureText(t, c.Target)
			prediction := fixtureText(t, c.Prediction)
			got, err := RougeScorer{Types: []string{c.Type}, Stem: c.Stem}.Score(target, prediction)
			require.NoError(t, err)
			s := got[c.Type]
			// The expected values are printed to 5 places (ROUGE-1.5.5).
			delta := placesDelta(5)
			ok := assert.InDelta(t, c.Precision, s.Precision, delta, "precision")
			ok = assert.InDelta(t, c.Recall, s.Recall, delta, "recall") && ok
			count(assert.InDelta(t, c.FMeasure, s.FMeasure, delta, "fmeasure") && ok)
		})
	}
	for i, c := range v.LCS {
		t.Run(fmt.Sprintf("lcs/%d", i), func(t *testing.T) {
			if c.Cands == nil {
				idx := LCSIndices(c.Ref, c.Cand)
				ok := assert.Equal(t, *c.Length, len(idx))
				ok = assert.Equal(t, *c.Length, LCSLength(c.Ref, c.Cand)) && ok
				if len(c.RefIndices) == 0 {
					count(assert.Empty(t, idx) && ok)
				} else {
					count(assert.Equal(t, c.RefIndices, idx) && ok)
				}
				return
			}
			ok := assert.Equal(t, c.UnionLCS, UnionLCS(c.Ref, c.Cands))
			s := SummaryLevelLCS([][]int{c.Ref}, c.Cands)
			ok = assert.InDelta(t, c.Recall, s.Recall, placesDelta(7)) && ok
			count(assert.InDelta(t, c.Precision, s.Precision, placesDelta(7)) && ok)
		})
	}

	total := len(v.Inline) + len(v.Files) + len(v.LCS)
	t.Logf("rouge-score fixture vectors passed: %d of %d", passed, total)
	assert.Equal(t, 27, total, "the fixture file should hold 27 vectors; update this test if it grew")
}
