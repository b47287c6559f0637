package eval

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bleuVectors mirrors testdata/sacrebleu/bleu_vectors.json, which
// transcribes sacreBLEU's test/test_bleu.py and test/test_sentence_bleu.py.
type bleuVectors struct {
	CorpusBLEU []struct {
		Hyps    []string   `json:"hyps"`
		Refs    [][]string `json:"refs"`
		Options struct {
			Tokenize     string `json:"tokenize"`
			SmoothMethod string `json:"smooth_method"`
		} `json:"options"`
		Expected  float64 `json:"expected_score"`
		Tolerance float64 `json:"abs_tolerance"`
	} `json:"corpus_bleu"`
	MaxOrder []struct {
		Order    int        `json:"max_ngram_order"`
		Hyps     []string   `json:"hyps"`
		Refs     [][]string `json:"refs"`
		Expected string     `json:"expected_score_2dp"`
	} `json:"corpus_bleu_max_ngram_order"`
	Raw []struct {
		Hyps        []string   `json:"hyps"`
		Refs        [][]string `json:"refs"`
		SmoothValue float64    `json:"smooth_value"`
		Expected    float64    `json:"expected_score_fraction"`
		Tolerance   float64    `json:"abs_tolerance"`
		Case        string     `json:"case"`
	} `json:"raw_corpus_bleu"`
	RawStats []struct {
		Hyps        []string   `json:"hyps"`
		Refs        [][]string `json:"refs"`
		SmoothValue float64    `json:"smooth_value"`
		Counts      []int      `json:"expected_counts"`
		Totals      []int      `json:"expected_totals"`
	} `json:"raw_corpus_bleu_statistics"`
	FromStats []struct {
		Correct      []int    `json:"correct"`
		Total        []int    `json:"total"`
		SysLen       int      `json:"sys_len"`
		RefLen       int      `json:"ref_len"`
		SmoothMethod string   `json:"smooth_method"`
		SmoothValue  *float64 `json:"smooth_value"`
		Expected     float64  `json:"expected_score_fraction"`
		Tolerance    float64  `json:"abs_tolerance"`
		Exact        bool     `json:"exact"`
	} `json:"compute_bleu_from_statistics"`
	Sentence []struct {
		Hyp          string   `json:"hyp"`
		Refs         []string `json:"refs"`
		SmoothMethod string   `json:"smooth_method"`
		SmoothValue  *float64 `json:"smooth_value"`
		Lowercase    bool     `json:"lowercase"`
		Tokenize     string   `json:"tokenize"`
		Expected     float64  `json:"expected_score"`
		Tolerance    float64  `json:"abs_tolerance"`
	} `json:"sentence_bleu"`
}

// rawCorpusOptions are the options sacreBLEU's raw_corpus_bleu fixes:
// floor smoothing, no tokenization, effective order.
func rawCorpusOptions(floor *float64) BLEUOptions {
	return BLEUOptions{Tokenize: TokenizerNone, Smooth: SmoothFloor, SmoothValue: floor, EffectiveOrder: true}
}

// streams converts a fixture's reference streams, failing the test on a
// malformed fixture.
func streams(t *testing.T, s [][]string) [][]string {
	t.Helper()
	refs, err := RefsFromStreams(s)
	require.NoError(t, err)
	return refs
}

func TestBLEUFixtures(t *testing.T) {
	var v bleuVectors
	loadFixtureJSON(t, "sacrebleu/bleu_vectors.json", &v)
	passed := 0
	count := func(ok bool) {
		if ok {
			passed++
		}
	}

	for i, c := range v.CorpusBLEU {
		t.Run(fmt.Sprintf("corpus_bleu/%d_%s", i, c.Options.Tokenize+c.Options.SmoothMethod), func(t *testing.T) {
			opts := BLEUOptions{Tokenize: BLEUTokenizer(c.Options.Tokenize), Smooth: SmoothMethod(c.Options.SmoothMethod)}
			got, err := CorpusBLEU(c.Hyps, streams(t, c.Refs), opts)
			require.NoError(t, err)
			count(assert.InDelta(t, c.Expected, got.Score, c.Tolerance))
		})
	}
	for _, c := range v.MaxOrder {
		t.Run(fmt.Sprintf("max_ngram_order/%d", c.Order), func(t *testing.T) {
			got, err := CorpusBLEU(c.Hyps, streams(t, c.Refs), BLEUOptions{MaxOrder: c.Order})
			require.NoError(t, err)
			require.Len(t, got.Precisions, c.Order)
			// Upstream compares f"{score:.2f}"; Go's %.2f rounds the same way.
			count(assert.Equal(t, c.Expected, fmt.Sprintf("%.2f", got.Score)))
		})
	}
	for i, c := range v.Raw {
		t.Run(fmt.Sprintf("raw_corpus_bleu/%d_%s", i, c.Case), func(t *testing.T) {
			floor := c.SmoothValue
			got, err := CorpusBLEU(c.Hyps, streams(t, c.Refs), rawCorpusOptions(&floor))
			require.NoError(t, err)
			ok := assert.InDelta(t, c.Expected, got.Score/100, c.Tolerance)
			if c.Case == "offset_default_floor_0.1" {
				// Upstream passes smooth_value=None here: the default
				// floor must be the 0.1 the fixture states.
				def, err := CorpusBLEU(c.Hyps, streams(t, c.Refs), rawCorpusOptions(nil))
				require.NoError(t, err)
				ok = assert.InDelta(t, c.Expected, def.Score/100, c.Tolerance) && ok
			}
			count(ok)
		})
	}
	for i, c := range v.RawStats {
		t.Run(fmt.Sprintf("raw_corpus_bleu_statistics/%d", i), func(t *testing.T) {
			floor := c.SmoothValue
			got, err := CorpusBLEU(c.Hyps, streams(t, c.Refs), rawCorpusOptions(&floor))
			require.NoError(t, err)
			ok := assert.Equal(t, c.Counts, got.Counts)
			count(assert.Equal(t, c.Totals, got.Totals) && ok)
		})
	}
	for i, c := range v.FromStats {
		t.Run(fmt.Sprintf("compute_bleu_from_statistics/%d", i), func(t *testing.T) {
			stats := BLEUStats{Counts: c.Correct, Totals: c.Total, SysLen: c.SysLen, RefLen: c.RefLen}
			got, err := BLEUFromStats(stats, BLEUOptions{Smooth: SmoothMethod(c.SmoothMethod), SmoothValue: c.SmoothValue})
			require.NoError(t, err)
			if c.Exact {
				count(assert.Equal(t, c.Expected, got.Score/100))
			} else {
				count(assert.InDelta(t, c.Expected, got.Score/100, c.Tolerance))
			}
		})
	}
	for i, c := range v.Sentence {
		name := fmt.Sprintf("sentence_bleu/%d_%s_%s", i, c.Tokenize, c.SmoothMethod)
		t.Run(name, func(t *testing.T) {
			opts := BLEUOptions{
				Tokenize:    BLEUTokenizer(c.Tokenize),
				Lowercase:   c.Lowercase,
				Smooth:      SmoothMethod(c.SmoothMethod),
				SmoothValue: c.SmoothValue,
			}
			got, err := SentenceBLEU(c.Hyp, c.Refs, opts)
			require.NoError(t, err)
			count(assert.InDelta(t, c.Expected, got.Score, c.Tolerance))
		})
	}

	total := len(v.CorpusBLEU) + len(v.MaxOrder) + len(v.Raw) + len(v.RawStats) + len(v.FromStats) + len(v.Sentence)
	t.Logf("sacreBLEU fixture vectors passed: %d of %d", passed, total)
	assert.Equal(t, 46, total, "the fixture file should hold 46 vectors; update this test if it grew")
}
