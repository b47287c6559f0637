package data

import (
	"fmt"
	"math"
)

// Split names one of the three output splits.
type Split string

// The splits, in the order their files are written.
const (
	SplitTrain Split = "train"
	SplitVal   Split = "val"
	SplitTest  Split = "test"
)

// Splits lists the splits in output order.
func Splits() []Split { return []Split{SplitTrain, SplitVal, SplitTest} }

// Fractions are the shares of examples in each split; they sum to 1.
type Fractions struct {
	Train float64 `json:"train"`
	Val   float64 `json:"val"`
	Test  float64 `json:"test"`
}

// NewFractions builds Fractions from the validation and test shares; the
// rest is train.
func NewFractions(val, test float64) (Fractions, error) {
	if val < 0 || test < 0 || math.IsNaN(val) || math.IsNaN(test) || val+test > 1 {
		return Fractions{}, fmt.Errorf("split fractions val=%g test=%g: each must be ≥ 0 and together ≤ 1", val, test)
	}
	return Fractions{Train: 1 - val - test, Val: val, Test: test}, nil
}

// Assign picks the split of an example from the hash of its normalised
// content and the seed. Because the choice depends only on content, two
// records that normalise alike always land in the same split, so a
// duplicate can never leak from train into val or test, and the choice does
// not change when other records are added or removed.
func (f Fractions) Assign(folded, seed uint64) Split {
	u := float64(mix64(folded^mix64(seed))>>11) / (1 << 53)
	switch {
	case u < f.Train:
		return SplitTrain
	case u < f.Train+f.Val:
		return SplitVal
	case f.Test > 0:
		return SplitTest
	case f.Val > 0:
		return SplitVal // rounding at the top end of train+val
	}
	return SplitTrain
}

// mix64 is the SplitMix64 finaliser: it spreads FNV's weak low bits so
// hashes map uniformly onto [0, 1).
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
