package trainer

import (
	"fmt"
	"math/rand/v2"
)

// Example is one encoded training sequence: token ids and, per token, whether the loss
// counts predicting it (false for prompt tokens).
type Example struct {
	IDs  []int32
	Mask []bool
}

// Dataset is a finite, indexable list of examples; Train shuffles the indices itself.
type Dataset interface {
	Len() int
	Example(i int) (Example, error)
}

// Examples is a Dataset held in memory.
type Examples []Example

// Len is the number of examples.
func (e Examples) Len() int { return len(e) }

// Example returns example i.
func (e Examples) Example(i int) (Example, error) {
	if i < 0 || i >= len(e) {
		return Example{}, fmt.Errorf("trainer: example %d out of range [0, %d)", i, len(e))
	}
	return e[i], nil
}

// Windows cuts a token stream into examples of window+1 tokens (window inputs each
// predicting the next), starting every stride tokens; every token but the first of each
// window is a target. A final shorter window is kept if it has at least two tokens.
func Windows(ids []int32, window, stride int) Examples {
	if window < 1 {
		return nil
	}
	if stride < 1 {
		stride = window
	}
	var out Examples
	for start := 0; start+1 < len(ids); start += stride {
		end := min(start+window+1, len(ids))
		ex := Example{IDs: ids[start:end], Mask: make([]bool, end-start)}
		for i := 1; i < len(ex.Mask); i++ {
			ex.Mask[i] = true
		}
		out = append(out, ex)
		if end == len(ids) {
			break
		}
	}
	return out
}

// Split shuffles d's indices with seed and returns the first n-valN as the training set
// and the last valN as the validation set.
func Split(d Dataset, valFraction float64, seed uint64) (train, val Dataset) {
	n := d.Len()
	perm := rand.New(rand.NewPCG(seed, 0x5917)).Perm(n)
	valN := int(float64(n) * valFraction)
	if valFraction > 0 && valN == 0 && n > 1 {
		valN = 1
	}
	return subset{d, perm[:n-valN]}, subset{d, perm[n-valN:]}
}

type subset struct {
	d   Dataset
	idx []int
}

func (s subset) Len() int                       { return len(s.idx) }
func (s subset) Example(i int) (Example, error) { return s.d.Example(s.idx[i]) }
