package eval

import (
	"errors"
	"fmt"
	"strings"
)

// BLEUOptions configure BLEU. The zero value is sacreBLEU's corpus_bleu
// default: 13a tokenization, case-sensitive, exp smoothing, 4-grams, no
// effective order.
type BLEUOptions struct {
	// Tokenize picks the tokenizer; empty means Tokenizer13a.
	Tokenize BLEUTokenizer `json:"tokenize,omitempty"`
	// Lowercase lower-cases hypotheses and references before tokenizing.
	Lowercase bool `json:"lowercase,omitempty"`
	// Smooth picks the smoothing method; empty means SmoothExp.
	Smooth SmoothMethod `json:"smooth,omitempty"`
	// SmoothValue is the floor or add-k value; nil means the method's
	// default (DefaultFloorValue, DefaultAddKValue). A pointer, because 0
	// is a meaningful floor.
	SmoothValue *float64 `json:"smooth_value,omitempty"`
	// MaxOrder is the largest n-gram order; 0 means DefaultMaxOrder.
	MaxOrder int `json:"max_order,omitempty"`
	// EffectiveOrder averages only over the orders for which the
	// hypothesis has n-grams, as sentence-level BLEU should.
	EffectiveOrder bool `json:"effective_order,omitempty"`
}

// ErrNoReferences is returned when a hypothesis has no reference to score
// against.
var ErrNoReferences = errors.New("no references")

// ErrEmptyCorpus is returned when there is nothing to score.
var ErrEmptyCorpus = errors.New("empty corpus")

// maxOrder returns the configured maximum n-gram order.
func (o BLEUOptions) maxOrder() (int, error) {
	switch {
	case o.MaxOrder == 0:
		return DefaultMaxOrder, nil
	case o.MaxOrder < 0:
		return 0, fmt.Errorf("BLEU max order %d: must be at least 1", o.MaxOrder)
	}
	return o.MaxOrder, nil
}

// bleuPrep is the per-call setup shared by every segment: the resolved
// options, done once so a bad option fails before any text is processed.
type bleuPrep struct {
	tokenize  func(string) string
	lowercase bool
	order     int
}

// prepare validates opts and resolves the tokenizer and order.
func (o BLEUOptions) prepare() (bleuPrep, error) {
	tok, err := o.Tokenize.resolve()
	if err != nil {
		return bleuPrep{}, err
	}
	order, err := o.maxOrder()
	if err != nil {
		return bleuPrep{}, err
	}
	if _, _, err := o.smoothing(); err != nil {
		return bleuPrep{}, err
	}
	return bleuPrep{tokenize: tok, lowercase: o.Lowercase, order: order}, nil
}

// preprocess lower-cases (optionally), strips trailing whitespace and
// tokenizes one segment, in sacreBLEU's order.
func (p bleuPrep) preprocess(s string) string {
	if p.lowercase {
		s = pyLower(s)
	}
	return p.tokenize(pyRstrip(s))
}

// ngramCounts returns, per order 1..order, the count of each n-gram of the
// whitespace tokens of line, and the number of tokens. An n-gram is keyed by
// its tokens joined with a space, which no token contains.
func ngramCounts(line string, order int) ([]map[string]int, int) {
	tokens := pyFields(line)
	counts := make([]map[string]int, order)
	for n := 1; n <= order; n++ {
		m := make(map[string]int, max(len(tokens)-n+1, 0))
		for i := 0; i+n <= len(tokens); i++ {
			m[strings.Join(tokens[i:i+n], " ")]++
		}
		counts[n-1] = m
	}
	return counts, len(tokens)
}

// closestRefLen returns the reference length closest to hypLen, the
// shorter one on a tie, as sacreBLEU (and mteval) choose it.
func closestRefLen(hypLen int, refLens []int) int {
	bestDiff, best := -1, -1
	for _, l := range refLens {
		diff := max(hypLen-l, l-hypLen)
		if bestDiff == -1 || diff < bestDiff || (diff == bestDiff && l < best) {
			bestDiff, best = diff, l
		}
	}
	return best
}

// segmentStats computes the statistics of one tokenized hypothesis against
// its tokenized references: each n-gram's match is clipped by its largest
// count in any one reference.
func segmentStats(hyp string, refs []string, order int) BLEUStats {
	var refMax []map[string]int
	refLens := make([]int, len(refs))
	for k, ref := range refs {
		counts, n := ngramCounts(ref, order)
		refLens[k] = n
		if refMax == nil {
			refMax = counts
			continue
		}
		for o, m := range counts {
			for g, c := range m {
				if c > refMax[o][g] {
					refMax[o][g] = c
				}
			}
		}
	}
	hypCounts, hypLen := ngramCounts(hyp, order)
	st := BLEUStats{
		Counts: make([]int, order),
		Totals: make([]int, order),
		SysLen: hypLen,
		RefLen: closestRefLen(hypLen, refLens),
	}
	for o, m := range hypCounts {
		for g, c := range m {
			st.Totals[o] += c
			st.Counts[o] += min(c, refMax[o][g])
		}
	}
	return st
}

// CorpusStats returns the corpus-level sufficient statistics of BLEU.
// references[i] holds the references of hypotheses[i]; their number may
// vary between segments, but none may be empty.
func CorpusStats(hypotheses []string, references [][]string, opts BLEUOptions) (BLEUStats, error) {
	prep, err := opts.prepare()
	if err != nil {
		return BLEUStats{}, err
	}
	if len(hypotheses) == 0 {
		return BLEUStats{}, fmt.Errorf("BLEU: %w", ErrEmptyCorpus)
	}
	if len(references) != len(hypotheses) {
		return BLEUStats{}, fmt.Errorf("BLEU: %d hypotheses but %d reference lists", len(hypotheses), len(references))
	}
	total := BLEUStats{Counts: make([]int, prep.order), Totals: make([]int, prep.order)}
	for i, hyp := range hypotheses {
		if len(references[i]) == 0 {
			return BLEUStats{}, fmt.Errorf("BLEU: hypothesis %d: %w", i, ErrNoReferences)
		}
		refs := make([]string, len(references[i]))
		for k, r := range references[i] {
			refs[k] = prep.preprocess(r)
		}
		total.add(segmentStats(prep.preprocess(hyp), refs, prep.order))
	}
	return total, nil
}

// CorpusBLEU computes corpus BLEU as sacreBLEU's corpus_bleu does: the
// n-gram statistics of all segments are summed before the precisions and
// the brevity penalty are taken. references[i] holds the references of
// hypotheses[i] (see RefsFromStreams for sacreBLEU's stream layout).
func CorpusBLEU(hypotheses []string, references [][]string, opts BLEUOptions) (BLEUScore, error) {
	stats, err := CorpusStats(hypotheses, references, opts)
	if err != nil {
		return BLEUScore{}, err
	}
	return BLEUFromStats(stats, opts)
}

// SentenceBLEU computes BLEU of one hypothesis as sacreBLEU's
// sentence_bleu does, which turns effective order on; opts.EffectiveOrder is
// ignored. For sentence BLEU without effective order, call CorpusBLEU with
// one hypothesis.
func SentenceBLEU(hypothesis string, references []string, opts BLEUOptions) (BLEUScore, error) {
	opts.EffectiveOrder = true
	return CorpusBLEU([]string{hypothesis}, [][]string{references}, opts)
}

// RefsFromStreams converts sacreBLEU's reference layout, where streams[k][i]
// is the k-th reference of hypothesis i, to the per-hypothesis layout the
// functions here take. All streams must have the same length.
func RefsFromStreams(streams [][]string) ([][]string, error) {
	if len(streams) == 0 {
		return nil, fmt.Errorf("reference streams: %w", ErrNoReferences)
	}
	n := len(streams[0])
	refs := make([][]string, n)
	for k, s := range streams {
		if len(s) != n {
			return nil, fmt.Errorf("reference stream %d has %d segments, stream 0 has %d", k, len(s), n)
		}
		for i, r := range s {
			refs[i] = append(refs[i], r)
		}
	}
	return refs, nil
}
