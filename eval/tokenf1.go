package eval

// TokenF1 returns the best token-level F1 between the prediction and any
// reference (0 when there are no references), as SQuAD's evaluation script
// computes it: both sides are normalized with NormalizeAnswer and split on
// whitespace, and the overlap is the size of the multiset intersection.
//
// When either side has no tokens the F1 is 1 if both are empty and 0
// otherwise, following the SQuAD 2.0 script; version 1.1 of the script
// returned 0 for two empty answers, which made an empty reference
// unmatchable.
func TokenF1(prediction string, references ...string) float64 {
	pred := answerTokens(prediction)
	best := 0.0
	for _, ref := range references {
		if f := tokenF1(pred, answerTokens(ref)); f > best {
			best = f
		}
	}
	return best
}

// tokenF1 is the F1 of one tokenized prediction against one tokenized
// reference.
func tokenF1(pred, ref []string) float64 {
	if len(pred) == 0 || len(ref) == 0 {
		if len(pred) == len(ref) {
			return 1
		}
		return 0
	}
	refCounts := make(map[string]int, len(ref))
	for _, t := range ref {
		refCounts[t]++
	}
	same := 0
	for _, t := range pred {
		if refCounts[t] > 0 {
			refCounts[t]--
			same++
		}
	}
	if same == 0 {
		return 0
	}
	precision := float64(same) / float64(len(pred))
	recall := float64(same) / float64(len(ref))
	return (2 * precision * recall) / (precision + recall)
}
