package eval

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// RougeScore is one ROUGE result, each value in 0..1.
type RougeScore struct {
	// Precision is the overlap divided by the prediction's size.
	Precision float64 `json:"precision"`
	// Recall is the overlap divided by the target's size.
	Recall float64 `json:"recall"`
	// FMeasure is the harmonic mean of precision and recall.
	FMeasure float64 `json:"fmeasure"`
}

// newRougeScore fills in the F-measure as rouge-score does: 0 when
// precision and recall are both 0.
func newRougeScore(precision, recall float64) RougeScore {
	s := RougeScore{Precision: precision, Recall: recall}
	if precision+recall > 0 {
		s.FMeasure = 2 * precision * recall / (precision + recall)
	}
	return s
}

// The ROUGE types RougeScorer computes besides "rouge1".."rouge9".
const (
	// RougeL is LCS-based ROUGE over the whole text as one sequence.
	RougeL = "rougeL"
	// RougeLsum is summary-level ROUGE-L over newline-separated sentences.
	RougeLsum = "rougeLsum"
)

// ErrRougeType is returned for a ROUGE type other than rouge1..rouge9,
// rougeL and rougeLsum.
var ErrRougeType = errors.New("invalid ROUGE type (want rouge1..rouge9, rougeL or rougeLsum)")

// RougeScorer computes ROUGE as Google's rouge-score package does
// (RougeScorer with its default tokenizer). The zero value computes
// nothing; set Types.
type RougeScorer struct {
	// Types lists the ROUGE types to compute: "rouge1".."rouge9",
	// "rougeL", "rougeLsum".
	Types []string
	// Stem applies PorterStem to tokens longer than 3 letters, like
	// rouge-score's use_stemmer=True (ROUGE-1.5.5's -m).
	Stem bool
}

// rougeOrder returns n for a "rougeN" type, or 0 for rougeL and rougeLsum.
func rougeOrder(typ string) (int, error) {
	switch typ {
	case RougeL, RougeLsum:
		return 0, nil
	}
	// rouge-score accepts "rouge" followed by exactly one digit, 1..9.
	if len(typ) == 6 && strings.HasPrefix(typ, "rouge") {
		if n, err := strconv.Atoi(typ[5:]); err == nil && n > 0 {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%q: %w", typ, ErrRougeType)
}

// Score returns the score of prediction against target for each type in
// s.Types. Recall is measured against target, precision against prediction.
func (s RougeScorer) Score(target, prediction string) (map[string]RougeScore, error) {
	var targetTokens, predTokens []string
	out := make(map[string]RougeScore, len(s.Types))
	for _, typ := range s.Types {
		n, err := rougeOrder(typ)
		if err != nil {
			return nil, err
		}
		if typ == RougeLsum {
			out[typ] = SummaryLevelLCS(s.sentences(target), s.sentences(prediction))
			continue
		}
		if targetTokens == nil {
			targetTokens = RougeTokenize(target, s.Stem)
			predTokens = RougeTokenize(prediction, s.Stem)
		}
		if typ == RougeL {
			out[typ] = RougeLCS(targetTokens, predTokens)
		} else {
			out[typ] = RougeN(targetTokens, predTokens, n)
		}
	}
	return out, nil
}

// ScoreMulti scores prediction against each target and keeps, per type,
// the score with the highest F-measure (the first on a tie), as
// rouge-score's score_multi does.
func (s RougeScorer) ScoreMulti(targets []string, prediction string) (map[string]RougeScore, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("ROUGE: %w", ErrNoReferences)
	}
	var best map[string]RougeScore
	for _, t := range targets {
		scores, err := s.Score(t, prediction)
		if err != nil {
			return nil, err
		}
		if best == nil {
			best = scores
			continue
		}
		for typ, sc := range scores {
			if sc.FMeasure > best[typ].FMeasure {
				best[typ] = sc
			}
		}
	}
	return best, nil
}

// sentences splits text on "\n", drops empty lines, and tokenizes each, as
// rouge-score prepares text for ROUGE-Lsum.
func (s RougeScorer) sentences(text string) [][]string {
	var out [][]string
	for _, line := range strings.Split(text, "\n") {
		if line != "" {
			out = append(out, RougeTokenize(line, s.Stem))
		}
	}
	return out
}

// RougeTokenize tokenizes text as rouge-score's default tokenizer does:
// lower-case, treat every character outside a-z and 0-9 as a separator,
// and, with stem set, Porter-stem tokens longer than 3 letters. Non-ASCII
// letters are separators too, so ROUGE here (as there) scores English.
func RougeTokenize(text string, stem bool) []string {
	text = pyLower(text)
	var tokens []string
	for i := 0; i < len(text); {
		if !isRougeChar(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && isRougeChar(text[j]) {
			j++
		}
		tok := text[i:j]
		if stem && len(tok) > 3 {
			tok = PorterStem(tok)
		}
		if tok != "" {
			tokens = append(tokens, tok)
		}
		i = j
	}
	return tokens
}

// isRougeChar reports whether c is in rouge-score's token alphabet [a-z0-9].
// Bytes of multi-byte UTF-8 runes are never in it, so scanning bytes is safe.
func isRougeChar(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
}

// RougeN scores n-gram overlap: the overlap counts each n-gram as often as
// it occurs in both token lists; recall divides by the target's n-gram
// count and precision by the prediction's (each at least 1).
func RougeN(targetTokens, predTokens []string, n int) RougeScore {
	target := tokenNgrams(targetTokens, n)
	pred := tokenNgrams(predTokens, n)
	overlap, targetCount, predCount := 0, 0, 0
	for g, c := range target {
		overlap += min(c, pred[g])
		targetCount += c
	}
	for _, c := range pred {
		predCount += c
	}
	return newRougeScore(float64(overlap)/float64(max(predCount, 1)),
		float64(overlap)/float64(max(targetCount, 1)))
}

// tokenNgrams counts the n-grams of tokens, keyed by the tokens joined with
// a space (tokens are [a-z0-9]+, so the key is unambiguous).
func tokenNgrams(tokens []string, n int) map[string]int {
	m := make(map[string]int)
	for i := 0; i+n <= len(tokens); i++ {
		m[strings.Join(tokens[i:i+n], " ")]++
	}
	return m
}

// RougeLCS scores the longest common subsequence of the two token lists
// (ROUGE-L): recall is LCS/len(target), precision LCS/len(prediction), and
// both are 0 when either list is empty.
func RougeLCS(targetTokens, predTokens []string) RougeScore {
	if len(targetTokens) == 0 || len(predTokens) == 0 {
		return RougeScore{}
	}
	l := float64(LCSLength(targetTokens, predTokens))
	return newRougeScore(l/float64(len(predTokens)), l/float64(len(targetTokens)))
}
