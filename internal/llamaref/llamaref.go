// Package llamaref holds what tests share to use llama.cpp itself as the second
// opinion on a model: the logits libllama computes for a token sequence, and how far
// another computation is from them.
package llamaref

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
)

// Logits clears c's memory, decodes tokens as one sequence from position 0 and returns
// every position's logits.
func Logits(tb testing.TB, c *bindings.Context, tokens []int32) [][]float32 {
	tb.Helper()
	require.NoError(tb, c.ClearMemory())
	b, err := bindings.NewBatch(len(tokens), 1)
	require.NoError(tb, err)
	defer b.Close()
	for i, tok := range tokens {
		require.NoError(tb, b.Add(tok, int32(i), []int32{0}, true))
	}
	require.NoError(tb, c.Decode(b))
	out := make([][]float32, len(tokens))
	for i := range tokens {
		out[i], err = c.Logits(i)
		require.NoError(tb, err)
	}
	return out
}

// Flat concatenates rows.
func Flat(rows [][]float32) []float32 {
	var out []float32
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

// MaxAbsDiff returns max |a-b| and the range max-min of b, the reference.
func MaxAbsDiff(a, b []float32) (diff, rng float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range a {
		diff = math.Max(diff, math.Abs(float64(a[i])-float64(b[i])))
		lo, hi = math.Min(lo, float64(b[i])), math.Max(hi, float64(b[i]))
	}
	return diff, hi - lo
}
