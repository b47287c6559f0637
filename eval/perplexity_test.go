package eval

import (
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMeanNLL(t *testing.T) {
	cases := []struct {
		name   string
		losses []float32
		mask   []float32
		want   float64
	}{
		{"prompt and padding masked", []float32{1, 2, 3, 4}, []float32{0, 1, 1, 0}, 2.5},
		{"no mask counts all", []float32{1, 2, 3, 4}, nil, 2.5},
		{"weights", []float32{1, 4}, []float32{3, 1}, (3*1 + 1*4) / 4.0},
		{"garbage under a zero mask is skipped", []float32{float32(math.NaN()), 2, float32(math.Inf(1))}, []float32{0, 1, 0}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := MeanNLL(c.losses, c.mask)
			require.NoError(t, err)
			assert.InDelta(t, c.want, got, 1e-12)
		})
	}

	// Integer masks work too.
	got, err := MeanNLL([]float64{1, 3}, []int32{1, 1})
	require.NoError(t, err)
	assert.Equal(t, 2.0, got)
}

func TestMeanNLLErrors(t *testing.T) {
	_, err := MeanNLL([]float32{1, 2}, []float32{0, 0})
	assert.True(t, errors.Is(err, ErrNoTokens))
	_, err = MeanNLL([]float32{}, []float32(nil))
	assert.True(t, errors.Is(err, ErrNoTokens))
	_, err = MeanNLL([]float32{1, 2}, []float32{1})
	assert.True(t, errors.Is(err, ErrBadLoss))
	_, err = MeanNLL([]float32{float32(math.NaN())}, []float32{1})
	assert.True(t, errors.Is(err, ErrBadLoss))
	_, err = MeanNLL([]float32{1}, []float32{-1})
	assert.True(t, errors.Is(err, ErrBadLoss))
}

func TestPerplexity(t *testing.T) {
	assert.Equal(t, 1.0, Perplexity(0))
	// A uniform guess over 4 tokens has NLL ln 4 and perplexity 4.
	assert.InDelta(t, 4.0, Perplexity(math.Log(4)), 1e-12)
	assert.True(t, math.IsInf(Perplexity(1000), 1))
}

func TestLossAccumulator(t *testing.T) {
	var acc LossAccumulator
	_, err := acc.Mean()
	assert.True(t, errors.Is(err, ErrNoTokens))

	// Batch 1: two tokens of loss 1. Batch 2: one token of loss 4. The
	// token mean is 6/3 = 2, not the mean of batch means (2.5).
	s, w, err := SumNLL([]float32{1, 1, 9}, []float32{1, 1, 0})
	require.NoError(t, err)
	acc.Add(s, w)
	s, w, err = SumNLL([]float32{4}, []float32(nil))
	require.NoError(t, err)
	acc.Add(s, w)

	assert.Equal(t, 3.0, acc.Tokens())
	mean, err := acc.Mean()
	require.NoError(t, err)
	assert.Equal(t, 2.0, mean)
	ppl, err := acc.Perplexity()
	require.NoError(t, err)
	assert.InDelta(t, math.Exp(2), ppl, 1e-12)
}
