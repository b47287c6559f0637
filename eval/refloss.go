package eval

import (
	"context"
	"fmt"
	"math"

	"github.com/ecotune/ecotune/bindings"
)

// LossSequence is one tokenized example for ReferenceLoss: its ids (BOS
// included) and, per id, whether it is a target, as the trainer masks it
// (data.Encoded's IDs and Mask).
type LossSequence struct {
	IDs  []int32
	Mask []bool
}

// SequenceLoss is the negative log-likelihood of one sequence's targets.
type SequenceLoss struct {
	// Sum is the summed NLL of the target tokens, in nats.
	Sum float64 `json:"sum"`
	// Tokens counts the target tokens scored; the first token is never one,
	// since nothing predicts it.
	Tokens int `json:"tokens"`
}

// Mean returns Sum/Tokens, or NaN when no token was scored.
func (l SequenceLoss) Mean() float64 {
	if l.Tokens == 0 {
		return math.NaN()
	}
	return l.Sum / float64(l.Tokens)
}

// ReferenceLoss scores each sequence's target tokens under the model of c (with
// whatever adapters c has): token i is a target when Mask[i] is set and i > 0, and
// its loss is -log softmax(logits after ids[:i])[ids[i]], computed in float64.
// Several sequences share one batch when they fit in NBatch tokens and NSeqMax
// sequences; a longer one is decoded alone in NBatch chunks and must fit NCtxSeq.
// The mean over a dataset is the sum of Sum over the sum of Tokens (a
// LossAccumulator), the token-weighted mean a trainer reports. c's memory is
// cleared before and after.
func ReferenceLoss(goctx context.Context, c *bindings.Context, seqs []LossSequence) ([]SequenceLoss, error) {
	for i, s := range seqs {
		if len(s.Mask) != len(s.IDs) {
			return nil, fmt.Errorf("eval: reference loss: sequence %d has %d ids but %d mask values", i, len(s.IDs), len(s.Mask))
		}
		if len(s.IDs) > c.NCtxSeq() {
			return nil, fmt.Errorf("eval: reference loss: sequence %d has %d tokens but a sequence holds %d: %w", i, len(s.IDs), c.NCtxSeq(), bindings.ErrKVCacheFull)
		}
	}
	if err := c.ClearMemory(); err != nil {
		return nil, err
	}
	defer c.ClearMemory()
	batch, err := bindings.NewBatch(c.NBatch(), 1)
	if err != nil {
		return nil, err
	}
	defer batch.Close()

	out := make([]SequenceLoss, len(seqs))
	// want[k] is the sequence and target position whose logits sit at batch index k.
	type target struct{ seq, pos int }
	var want []target
	flush := func() error {
		if batch.Len() == 0 {
			return nil
		}
		if err := goctx.Err(); err != nil {
			return err
		}
		if err := c.Decode(batch); err != nil {
			return fmt.Errorf("eval: reference loss: %w", err)
		}
		for k, w := range want {
			if w.seq < 0 {
				continue
			}
			logits, err := c.Logits(k)
			if err != nil {
				return err
			}
			tok := seqs[w.seq].IDs[w.pos]
			if int(tok) < 0 || int(tok) >= len(logits) {
				return fmt.Errorf("eval: reference loss: sequence %d token %d is %d, outside the vocabulary", w.seq, w.pos, tok)
			}
			out[w.seq].Sum += nll(logits, tok)
			out[w.seq].Tokens++
		}
		batch.Clear()
		want = want[:0]
		return nil
	}
	// add puts ids[from:to] of sequence i on KV sequence slot.
	add := func(i, slot, from, to int) error {
		s := seqs[i]
		for p := from; p < to; p++ {
			// The logits after token p predict token p+1.
			isTarget := p+1 < len(s.IDs) && s.Mask[p+1]
			if err := batch.Add(s.IDs[p], int32(p), []int32{int32(slot)}, isTarget); err != nil {
				return err
			}
			if isTarget {
				want = append(want, target{i, p + 1})
			} else {
				want = append(want, target{-1, 0})
			}
		}
		return nil
	}

	slot := 0 // the next free KV sequence of the current group
	for i, s := range seqs {
		n := len(s.IDs)
		if n < 2 {
			continue // nothing predicts a lone token
		}
		if n > batch.Cap() {
			// Too long to share a batch: decode it alone, chunk by chunk.
			if err := flush(); err != nil {
				return nil, err
			}
			if err := c.ClearMemory(); err != nil {
				return nil, err
			}
			for from := 0; from < n; from += batch.Cap() {
				if err := add(i, 0, from, min(from+batch.Cap(), n)); err != nil {
					return nil, err
				}
				if err := flush(); err != nil {
					return nil, err
				}
			}
			if err := c.ClearMemory(); err != nil {
				return nil, err
			}
			slot = 0
			continue
		}
		if batch.Len()+n > batch.Cap() || slot >= c.NSeqMax() {
			if err := flush(); err != nil {
				return nil, err
			}
			if err := c.ClearMemory(); err != nil {
				return nil, err
			}
			slot = 0
		}
		if err := add(i, slot, 0, n); err != nil {
			return nil, err
		}
		slot++
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// nll returns -log softmax(logits)[tok] in float64.
func nll(logits []float32, tok int32) float64 {
	hi := math.Inf(-1)
	for _, l := range logits {
		hi = max(hi, float64(l))
	}
	sum := 0.0
	for _, l := range logits {
		sum += math.Exp(float64(l) - hi)
	}
	return hi + math.Log(sum) - float64(logits[tok])
}
