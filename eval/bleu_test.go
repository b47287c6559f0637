package eval

import (
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The expected values below follow from BLEU's definition, worked by hand:
// BLEU = BP * exp(mean over orders of log p_n), p_n in percent, with
// BP = exp(1 - ref/sys) when sys < ref.

func TestCorpusBLEUEdgeCases(t *testing.T) {
	cases := []struct {
		name   string
		hyps   []string
		refs   [][]string
		opts   BLEUOptions
		want   float64
		counts []int
		totals []int
		sys    int
		ref    int
		bp     float64
	}{
		{
			// No hypothesis n-grams at all: sacreBLEU returns 0, and the
			// brevity penalty of an empty hypothesis is 0.
			name: "empty hypothesis",
			hyps: []string{""}, refs: [][]string{{"a b"}},
			want: 0, counts: []int{0, 0, 0, 0}, totals: []int{0, 0, 0, 0}, sys: 0, ref: 2, bp: 0,
		},
		{
			// Nothing matches: 0 whatever the smoothing.
			name: "no overlap",
			hyps: []string{"this is a cat"}, refs: [][]string{{"okay thanks"}},
			want: 0, counts: []int{0, 0, 0, 0}, totals: []int{4, 3, 2, 1}, sys: 4, ref: 2, bp: 1,
		},
		{
			// 7 tokens against 6: p = 6/7, 5/6, 4/5, 3/4 ("today" and the
			// n-grams that use it miss); BP = 1 since sys > ref.
			name: "hypothesis longer than reference",
			hyps: []string{"the cat sat on the mat today"}, refs: [][]string{{"the cat sat on the mat"}},
			want: 100 * math.Pow(6.0/7*5.0/6*4.0/5*3.0/4, 0.25), counts: []int{6, 5, 4, 3}, totals: []int{7, 6, 5, 4}, sys: 7, ref: 6, bp: 1,
		},
		{
			// Clipping: "the" counts once, as often as the reference has it.
			// Orders 2..4 match nothing, so exp smoothing gives them
			// 100/(2*3), 100/(4*2), 100/(8*1) percent.
			name: "clipped counts with exp smoothing",
			hyps: []string{"the the the the"}, refs: [][]string{{"the cat"}},
			want: 100 * math.Pow(1.0/4*1.0/6*1.0/8*1.0/8, 0.25), counts: []int{1, 0, 0, 0}, totals: []int{4, 3, 2, 1}, sys: 4, ref: 2, bp: 1,
		},
		{
			// Character BLEU on Chinese, by hand: hypothesis 我 喜 欢 猫,
			// reference 我 很 喜 欢 猫. Matches: 4/4 unigrams, 2/3 bigrams
			// (喜欢, 欢猫), 1/2 trigrams (喜欢猫), 0/1 4-grams, which exp
			// smoothing turns into 1/2. BP = exp(1 - 5/4).
			name: "CJK with char tokenizer",
			hyps: []string{"我喜欢猫"}, refs: [][]string{{"我很喜欢猫"}},
			opts: BLEUOptions{Tokenize: TokenizerChar},
			want: 100 * math.Exp(1-5.0/4) * math.Pow(1*2.0/3*1.0/2*1.0/2, 0.25), counts: []int{4, 2, 1, 0}, totals: []int{4, 3, 2, 1}, sys: 4, ref: 5, bp: math.Exp(1 - 5.0/4),
		},
		{
			// intl splits the ideographic full stop and question mark but
			// keeps 我喜欢猫 and 你呢 as words: 4 identical tokens.
			name: "CJK with intl tokenizer",
			hyps: []string{"我喜欢猫。你呢？"}, refs: [][]string{{"我喜欢猫。你呢？"}},
			opts: BLEUOptions{Tokenize: TokenizerIntl},
			want: 100, counts: []int{4, 3, 2, 1}, totals: []int{4, 3, 2, 1}, sys: 4, ref: 4, bp: 1,
		},
		{
			// Accented words are ordinary tokens: "café crème" matches
			// only its first token against "café noir"; with max order 2,
			// p1 = 1/2 and p2 = 0 smoothed to 100/(2*1) percent.
			name: "accented words",
			hyps: []string{"café crème"}, refs: [][]string{{"café noir"}},
			opts: BLEUOptions{MaxOrder: 2},
			want: 100 * math.Sqrt(0.5*0.5), counts: []int{1, 0}, totals: []int{2, 1}, sys: 2, ref: 2, bp: 1,
		},
		{
			// Lowercase applies before tokenizing, to both sides.
			name: "lowercase",
			hyps: []string{"THE CAT"}, refs: [][]string{{"the cat"}},
			opts: BLEUOptions{Lowercase: true, MaxOrder: 2},
			want: 100, counts: []int{2, 1}, totals: []int{2, 1}, sys: 2, ref: 2, bp: 1,
		},
		{
			// Two references: n-gram counts clip by the best reference,
			// and the reference length is the closest one (3, not 6).
			name: "multiple references",
			hyps: []string{"a b c"}, refs: [][]string{{"a b x y z w", "q b c"}},
			opts: BLEUOptions{MaxOrder: 2},
			want: 100 * math.Sqrt(1*2.0/2), counts: []int{3, 2}, totals: []int{3, 2}, sys: 3, ref: 3, bp: 1,
		},
		{
			// Corpus BLEU sums statistics: sys 1+2, ref 1+2, unigram 2/3,
			// bigram 1/1 (only the second segment has one).
			name: "corpus sums statistics",
			hyps: []string{"a", "b c"}, refs: [][]string{{"x"}, {"b c"}},
			opts: BLEUOptions{MaxOrder: 2},
			want: 100 * math.Sqrt(2.0/3*1), counts: []int{2, 1}, totals: []int{3, 1}, sys: 3, ref: 3, bp: 1,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := CorpusBLEU(c.hyps, c.refs, c.opts)
			require.NoError(t, err)
			assert.InDelta(t, c.want, got.Score, 1e-9)
			assert.Equal(t, c.counts, got.Counts)
			assert.Equal(t, c.totals, got.Totals)
			assert.Equal(t, c.sys, got.SysLen)
			assert.Equal(t, c.ref, got.RefLen)
			assert.InDelta(t, c.bp, got.BP, 1e-12)
		})
	}
}

func TestSentenceBLEUEffectiveOrder(t *testing.T) {
	// A two-token hypothesis has no 3- or 4-grams; effective order
	// averages over orders 1 and 2 only, so an exact match scores 100.
	got, err := SentenceBLEU("a test", []string{"a test"}, BLEUOptions{})
	require.NoError(t, err)
	assert.InDelta(t, 100.0, got.Score, 1e-12)

	// The same segment through CorpusBLEU (no effective order) keeps the
	// empty orders at precision 0, so BLEU is 0.
	corpus, err := CorpusBLEU([]string{"a test"}, [][]string{{"a test"}}, BLEUOptions{})
	require.NoError(t, err)
	assert.Equal(t, 0.0, corpus.Score)
}

func TestBLEUFromStatsSmoothing(t *testing.T) {
	stats := BLEUStats{Counts: []int{3, 1, 0, 0}, Totals: []int{4, 3, 2, 1}, SysLen: 4, RefLen: 4}
	k := 2.0
	cases := []struct {
		name string
		opts BLEUOptions
		want float64
	}{
		// p = 3/4, 1/3, then 0/2 and 0/1 become 1/(2*2), 1/(4*1).
		{"exp", BLEUOptions{}, 100 * math.Pow(3.0/4*1.0/3*1.0/4*1.0/4, 0.25)},
		// Zero precisions give log 0, so BLEU is 0.
		{"none", BLEUOptions{Smooth: SmoothNone}, 0},
		// Zero counts become 0.1: 0.1/2 and 0.1/1.
		{"floor default", BLEUOptions{Smooth: SmoothFloor}, 100 * math.Pow(3.0/4*1.0/3*0.1/2*0.1/1, 0.25)},
		// Orders above 1 get +k on both counts: (1+2)/(3+2), 2/4, 2/3.
		{"add-k 2", BLEUOptions{Smooth: SmoothAddK, SmoothValue: &k}, 100 * math.Pow(3.0/4*3.0/5*2.0/4*2.0/3, 0.25)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := BLEUFromStats(stats, c.opts)
			require.NoError(t, err)
			assert.InDelta(t, c.want, got.Score, 1e-9)
			assert.Equal(t, stats.Counts, got.Counts, "counts are reported before smoothing")
		})
	}
}

func TestBLEUErrors(t *testing.T) {
	_, err := CorpusBLEU([]string{"a"}, [][]string{{"a"}}, BLEUOptions{Tokenize: "zh"})
	assert.True(t, errors.Is(err, ErrUnknownTokenizer), "%v", err)
	_, err = CorpusBLEU([]string{"a"}, [][]string{{"a"}}, BLEUOptions{Smooth: "magic"})
	assert.True(t, errors.Is(err, ErrUnknownSmoothMethod), "%v", err)
	_, err = CorpusBLEU([]string{"a"}, [][]string{{"a"}}, BLEUOptions{MaxOrder: -1})
	assert.Error(t, err)
	_, err = CorpusBLEU(nil, nil, BLEUOptions{})
	assert.True(t, errors.Is(err, ErrEmptyCorpus), "%v", err)
	_, err = CorpusBLEU([]string{"a"}, [][]string{{}}, BLEUOptions{})
	assert.True(t, errors.Is(err, ErrNoReferences), "%v", err)
	_, err = CorpusBLEU([]string{"a", "b"}, [][]string{{"a"}}, BLEUOptions{})
	assert.Error(t, err)

	_, err = BLEUFromStats(BLEUStats{Counts: []int{1}, Totals: []int{1, 1}}, BLEUOptions{})
	assert.True(t, errors.Is(err, ErrBadStats), "%v", err)
	_, err = BLEUFromStats(BLEUStats{Counts: []int{-1}, Totals: []int{1}}, BLEUOptions{})
	assert.True(t, errors.Is(err, ErrBadStats), "%v", err)
	_, err = BLEUFromStats(BLEUStats{}, BLEUOptions{})
	assert.True(t, errors.Is(err, ErrBadStats), "%v", err)
}

func TestClosestRefLen(t *testing.T) {
	assert.Equal(t, 4, closestRefLen(5, []int{6, 4}), "a tie goes to the shorter reference")
	assert.Equal(t, 6, closestRefLen(6, []int{3, 6, 9}))
	assert.Equal(t, 2, closestRefLen(0, []int{7, 2}))
}

func TestRefsFromStreams(t *testing.T) {
	refs, err := RefsFromStreams([][]string{{"a1", "b1"}, {"a2", "b2"}})
	require.NoError(t, err)
	assert.Equal(t, [][]string{{"a1", "a2"}, {"b1", "b2"}}, refs)
	_, err = RefsFromStreams([][]string{{"a1", "b1"}, {"a2"}})
	assert.Error(t, err)
	_, err = RefsFromStreams(nil)
	assert.True(t, errors.Is(err, ErrNoReferences))
}

func TestBLEUScoreString(t *testing.T) {
	s := BLEUScore{Score: 48.530827, Precisions: []float64{82.35, 50, 45.45, 37.5}, BP: 0.943, Ratio: 0.944, SysLen: 17, RefLen: 18}
	assert.Equal(t, "BLEU = 48.53 82.3/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)", s.String())
}
