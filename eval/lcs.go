package eval

import "slices"

// lcsTable fills the longest-common-subsequence table of ref (rows) and
// cand (columns): entry (i, j) is the LCS length of ref[:i] and cand[:j].
// It is stored flat, with row stride len(cand)+1.
func lcsTable[T comparable](ref, cand []T) []int {
	cols := len(cand) + 1
	t := make([]int, (len(ref)+1)*cols)
	for i := 1; i <= len(ref); i++ {
		for j := 1; j <= len(cand); j++ {
			if ref[i-1] == cand[j-1] {
				t[i*cols+j] = t[(i-1)*cols+j-1] + 1
			} else {
				t[i*cols+j] = max(t[(i-1)*cols+j], t[i*cols+j-1])
			}
		}
	}
	return t
}

// LCSLength returns the length of the longest common subsequence of a and b.
func LCSLength[T comparable](a, b []T) int {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	// Two rows suffice for the length alone, which keeps long texts cheap.
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			if a[i-1] == b[j-1] {
				cur[j] = prev[j-1] + 1
			} else {
				cur[j] = max(prev[j], cur[j-1])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// LCSIndices returns the indexes into ref of one longest common subsequence
// of ref and cand, in increasing order. When several exist it returns the
// one rouge-score's backtracking picks (matching from the end, preferring to
// drop a reference token on ties), because ROUGE-Lsum's union depends on
// which one is chosen.
func LCSIndices[T comparable](ref, cand []T) []int {
	t := lcsTable(ref, cand)
	cols := len(cand) + 1
	var idx []int
	i, j := len(ref), len(cand)
	for i > 0 && j > 0 {
		switch {
		case ref[i-1] == cand[j-1]:
			idx = append(idx, i-1)
			i--
			j--
		case t[i*cols+j-1] > t[(i-1)*cols+j]:
			j--
		default:
			i--
		}
	}
	slices.Reverse(idx)
	return idx
}

// UnionLCS returns the tokens of ref that belong to the LCS of ref with at
// least one of the candidate sentences, in ref's order: the union LCS of
// Lin (2004), section 3.2.
func UnionLCS[T comparable](ref []T, cands [][]T) []T {
	seen := make(map[int]bool)
	for _, c := range cands {
		for _, i := range LCSIndices(ref, c) {
			seen[i] = true
		}
	}
	idx := make([]int, 0, len(seen))
	for i := range seen {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	out := make([]T, len(idx))
	for k, i := range idx {
		out[k] = ref[i]
	}
	return out
}

// SummaryLevelLCS scores candidate sentences against reference sentences
// with the summary-level union LCS of Lin (2004), section 3.2, as
// rouge-score's ROUGE-Lsum does: for each reference sentence, its union LCS
// with all candidate sentences counts as hits, but each token is counted at
// most as often as it occurs in the whole reference and in the whole
// candidate (as ROUGE-1.5.5 does, unlike the paper). Recall divides by the
// reference token count, precision by the candidate token count.
func SummaryLevelLCS[T comparable](refSents, candSents [][]T) RougeScore {
	m, n := 0, 0
	refCounts := make(map[T]int)
	candCounts := make(map[T]int)
	for _, s := range refSents {
		m += len(s)
		for _, t := range s {
			refCounts[t]++
		}
	}
	for _, s := range candSents {
		n += len(s)
		for _, t := range s {
			candCounts[t]++
		}
	}
	if m == 0 || n == 0 {
		return RougeScore{}
	}
	hits := 0
	for _, r := range refSents {
		for _, t := range UnionLCS(r, candSents) {
			if refCounts[t] > 0 && candCounts[t] > 0 {
				hits++
				refCounts[t]--
				candCounts[t]--
			}
		}
	}
	return newRougeScore(float64(hits)/float64(n), float64(hits)/float64(m))
}
