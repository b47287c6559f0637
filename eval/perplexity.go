package eval

import (
	"errors"
	"fmt"
	"math"
)

// LossValue is the element type of loss slices.
type LossValue interface{ ~float32 | ~float64 }

// MaskValue is the element type of mask slices: 1 (or any weight) for a
// token that counts, 0 for one that does not (prompt, padding).
type MaskValue interface {
	~float32 | ~float64 | ~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint8
}

// ErrNoTokens is returned when a mask selects no token, so no mean exists.
var ErrNoTokens = errors.New("no tokens selected by the mask")

// ErrBadLoss is returned for a NaN or infinite loss on a selected token, or
// a negative or NaN mask weight.
var ErrBadLoss = errors.New("invalid loss or mask")

// SumNLL returns the weighted sum of per-token negative log-likelihoods and
// the sum of the weights. mask[i] weights losses[i]; a nil mask weights
// every token 1 (pass it typed, e.g. []float32(nil), so Go can infer M). Tokens with weight 0 are skipped even if their loss is NaN
// or infinite, because padded positions often hold garbage; a non-finite
// loss on a counted token is an error, since a mean over it means nothing.
func SumNLL[F LossValue, M MaskValue](losses []F, mask []M) (sum, weight float64, err error) {
	if mask != nil && len(mask) != len(losses) {
		return 0, 0, fmt.Errorf("%w: %d losses but %d mask values", ErrBadLoss, len(losses), len(mask))
	}
	for i, l := range losses {
		w := 1.0
		if mask != nil {
			w = float64(mask[i])
		}
		if w < 0 || math.IsNaN(w) {
			return 0, 0, fmt.Errorf("%w: mask weight %v at token %d", ErrBadLoss, w, i)
		}
		if w == 0 {
			continue
		}
		v := float64(l)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, 0, fmt.Errorf("%w: loss %v at token %d", ErrBadLoss, v, i)
		}
		sum += w * v
		weight += w
	}
	return sum, weight, nil
}

// MeanNLL returns the mean negative log-likelihood over the tokens mask
// selects (weighted by mask; nil selects all): sum(mask*loss)/sum(mask),
// the loss a fine-tuning run reports over target tokens.
func MeanNLL[F LossValue, M MaskValue](losses []F, mask []M) (float64, error) {
	sum, weight, err := SumNLL(losses, mask)
	if err != nil {
		return 0, err
	}
	if weight == 0 {
		return 0, ErrNoTokens
	}
	return sum / weight, nil
}

// Perplexity returns exp(meanNLL), the perplexity of a mean negative
// log-likelihood in nats; it is +Inf when the exponent overflows.
func Perplexity(meanNLL float64) float64 {
	return math.Exp(meanNLL)
}

// LossAccumulator sums losses over many batches so the mean is taken over
// tokens, not averaged over batches of different sizes. The zero value is
// ready to use; it is not safe for concurrent use.
type LossAccumulator struct {
	sum, weight float64
}

// Add adds a batch's weighted loss sum and weight, as SumNLL returns them.
func (a *LossAccumulator) Add(sum, weight float64) {
	a.sum += sum
	a.weight += weight
}

// Tokens returns the total weight added, the token count for 0/1 masks.
func (a *LossAccumulator) Tokens() float64 { return a.weight }

// Mean returns the mean loss over everything added, or ErrNoTokens.
func (a *LossAccumulator) Mean() (float64, error) {
	if a.weight == 0 {
		return 0, ErrNoTokens
	}
	return a.sum / a.weight, nil
}

// Perplexity returns exp of Mean, or ErrNoTokens.
func (a *LossAccumulator) Perplexity() (float64, error) {
	m, err := a.Mean()
	if err != nil {
		return 0, err
	}
	return Perplexity(m), nil
}
