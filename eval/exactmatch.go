package eval

// ExactMatch returns 1 if the normalized prediction equals the normalized
// form of any reference, else 0 (also 0 when there are no references).
// Normalization is NormalizeAnswer, as in SQuAD's evaluation script.
func ExactMatch(prediction string, references ...string) float64 {
	p := NormalizeAnswer(prediction)
	for _, ref := range references {
		if NormalizeAnswer(ref) == p {
			return 1
		}
	}
	return 0
}
