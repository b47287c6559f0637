package serve

import (
	"math"
	"slices"
)

// logSoftmax returns log p for every token. Sums run in float64: over a 150k-token
// vocabulary a float32 sum of exponentials would lose the small tail's mass.
func logSoftmax(logits []float32) []float32 {
	mx := float32(math.Inf(-1))
	for _, v := range logits {
		mx = max(mx, v)
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v - mx))
	}
	lse := float64(mx) + math.Log(sum)
	out := make([]float32, len(logits))
	for i, v := range logits {
		out[i] = float32(float64(v) - lse)
	}
	return out
}

// topLogprobs returns the n most likely tokens, most likely first (ties by id).
func (e *Engine) topLogprobs(lp []float32, n int) []TokenLogprob {
	if n <= 0 {
		return nil
	}
	n = min(n, len(lp))
	top := make([]int32, 0, n+1)
	for i := range lp {
		if len(top) == n && lp[i] <= lp[top[n-1]] {
			continue
		}
		at, _ := slices.BinarySearchFunc(top, int32(i), func(t, target int32) int {
			if lp[t] > lp[target] {
				return -1
			}
			return 1
		})
		top = slices.Insert(top, at, int32(i))
		if len(top) > n {
			top = top[:n]
		}
	}
	out := make([]TokenLogprob, len(top))
	for k, id := range top {
		piece, _ := e.model.TokenToPiece(id, false)
		out[k] = TokenLogprob{ID: id, Piece: piece, Logprob: lp[id]}
	}
	return out
}
