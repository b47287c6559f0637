package data

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// phrasing returns the i-th way of asking an instruction; %s stands for the
// original text. Index 0 is the original itself and is never chosen.
func phrasing(i int) string {
	return [...]string{
		"%s",
		"Question: %s",
		"Please answer the following question.\n\n%s",
		"%s\n\nGive a clear and accurate answer.",
		"I have a question: %s",
		"Answer the following:\n%s",
		"Could you help me with this? %s",
		"%s\n\nExplain your answer.",
		"Task: %s",
		"Here is something I would like to know.\n%s",
		"Respond to the following request.\n\n%s",
	}[i]
}

const numPhrasings = 11

// augment returns up to n variants of a train example, each asking its
// first instruction in another phrasing and, at random, starting it in
// lower case. The choice is seeded by the seed and the example's content,
// so a run is reproducible and independent of record order. Variants are
// marked Augmented and get the id "<id>-aug<k>".
func augment(ex *Example, n int, seed, folded uint64) []Example {
	if n <= 0 || ex.IsText() {
		return nil
	}
	first := -1
	for i, m := range ex.Messages {
		if m.Role == RoleUser {
			first = i
			break
		}
	}
	if first < 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(seed, folded))
	perm := rng.Perm(numPhrasings - 1)
	n = min(n, len(perm))
	out := make([]Example, 0, n)
	for k := range n {
		text := ex.Messages[first].Content
		if rng.IntN(2) == 0 {
			text = lowerFirst(text)
		}
		text = strings.Replace(phrasing(perm[k]+1), "%s", text, 1)
		v := *ex
		v.Messages = append([]Message(nil), ex.Messages...)
		v.Messages[first].Content = text
		v.Augmented = true
		v.ID = ex.ID + "-aug" + strconv.Itoa(k+1)
		out = append(out, v)
	}
	return out
}

// lowerFirst lower-cases the first letter unless the first word looks like
// an acronym or a name with inner capitals (CO2, NASA, iPhone).
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if !unicode.IsUpper(r) {
		return s
	}
	word, _, _ := strings.Cut(s, " ")
	for _, c := range word[n:] {
		if unicode.IsUpper(c) || unicode.IsDigit(c) {
			return s
		}
	}
	return string(unicode.ToLower(r)) + s[n:]
}
