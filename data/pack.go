package data

import (
	"fmt"
	"math/bits"
	"slices"
)

// Packed is one fixed-length training sequence holding several examples
// back to back. SegmentIDs number the examples from 1 (0 is padding) so
// the trainer can keep attention within an example, and Positions restart
// at 0 for each, as if each example were alone.
type Packed struct {
	IDs        []int32
	Mask       []bool // loss targets; false on padding
	SegmentIDs []int32
	Positions  []int32
	Examples   []int // indices of the packed examples in Pack's input, in sequence order
}

// Pack packs encoded examples into sequences of seqLen tokens, padding with
// padID, by best-fit decreasing (longest first, each into the fullest
// sequence it fits), which wastes little space and, with a stable sort, is
// deterministic. An example longer than seqLen is an error: truncate first.
func Pack(exs []Encoded, seqLen int, padID int32) ([]Packed, error) {
	if seqLen <= 0 {
		return nil, fmt.Errorf("pack: sequence length %d, want > 0", seqLen)
	}
	order := make([]int, len(exs))
	for i := range order {
		order[i] = i
		if n := exs[i].Len(); n > seqLen {
			return nil, fmt.Errorf("pack: example %d has %d tokens, more than the sequence length %d", i, n, seqLen)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return exs[b].Len() - exs[a].Len() })

	// free[r] lists the open sequences with r tokens of room; avail has bit
	// r set when free[r] is non-empty, so the best fit is a bit scan.
	free := make([][]int, seqLen+1)
	avail := make([]uint64, seqLen/64+1)
	var bins [][]int
	room := func(b int) int {
		n := 0
		for _, i := range bins[b] {
			n += exs[i].Len()
		}
		return seqLen - n
	}
	for _, i := range order {
		n := exs[i].Len()
		if n == 0 {
			continue
		}
		r := bestFit(avail, n)
		var b int
		if r < 0 {
			b = len(bins)
			bins = append(bins, nil)
		} else {
			b = free[r][0]
			free[r] = free[r][1:]
			if len(free[r]) == 0 {
				avail[r/64] &^= 1 << (r % 64)
			}
		}
		bins[b] = append(bins[b], i)
		left := room(b)
		free[left] = append(free[left], b)
		avail[left/64] |= 1 << (left % 64)
	}
	out := make([]Packed, len(bins))
	for b, members := range bins {
		p := Packed{
			IDs:        make([]int32, seqLen),
			Mask:       make([]bool, seqLen),
			SegmentIDs: make([]int32, seqLen),
			Positions:  make([]int32, seqLen),
			Examples:   members,
		}
		at := 0
		for s, i := range members {
			copy(p.IDs[at:], exs[i].IDs)
			copy(p.Mask[at:], exs[i].Mask)
			for k := range exs[i].IDs {
				p.SegmentIDs[at+k] = int32(s + 1)
				p.Positions[at+k] = int32(k)
			}
			at += exs[i].Len()
		}
		for k := at; k < seqLen; k++ {
			p.IDs[k] = padID
		}
		out[b] = p
	}
	return out, nil
}

// bestFit returns the smallest r >= n whose bit is set, or -1.
func bestFit(avail []uint64, n int) int {
	w := n / 64
	if w >= len(avail) {
		return -1
	}
	word := avail[w] &^ (1<<(n%64) - 1)
	for {
		if word != 0 {
			return w*64 + bits.TrailingZeros64(word)
		}
		w++
		if w == len(avail) {
			return -1
		}
		word = avail[w]
	}
}
