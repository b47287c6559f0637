package data

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// BatchOptions control Batches.
type BatchOptions struct {
	BatchSize   int   // sequences per micro-batch (> 0)
	PadID       int32 // token id used for padding
	PadMultiple int   // round each batch's length up to a multiple of this (fewer distinct shapes for the graph); 0 or 1 pads to the longest
	Seed        uint64
	Shuffle     bool // shuffle the order of batches with Seed (sequences stay grouped by length)
}

// Batch is a micro-batch of Size sequences padded to SeqLen, stored row
// major: token t of sequence s is at s*SeqLen+t.
type Batch struct {
	Size, SeqLen int
	IDs          []int32
	Mask         []bool // loss targets
	Attention    []bool // real tokens (false on padding)
	Examples     []int  // index in Batches' input of each row
}

// Batches groups encoded examples by length so little is spent on padding:
// examples are sorted by length (stably), cut into micro-batches of
// BatchSize neighbours, each padded to its longest, and the batch order is
// shuffled with Seed so training does not see lengths in order. The last
// batch may be smaller. Call again with another seed for a new epoch.
func Batches(exs []Encoded, opts BatchOptions) ([]Batch, error) {
	if opts.BatchSize <= 0 {
		return nil, fmt.Errorf("batches: batch size %d, want > 0", opts.BatchSize)
	}
	order := make([]int, len(exs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return exs[a].Len() - exs[b].Len() })
	var out []Batch
	for start := 0; start < len(order); start += opts.BatchSize {
		rows := order[start:min(start+opts.BatchSize, len(order))]
		seqLen := 0
		for _, i := range rows {
			seqLen = max(seqLen, exs[i].Len())
		}
		if m := opts.PadMultiple; m > 1 {
			seqLen = (seqLen + m - 1) / m * m
		}
		b := Batch{
			Size: len(rows), SeqLen: seqLen,
			IDs:       make([]int32, len(rows)*seqLen),
			Mask:      make([]bool, len(rows)*seqLen),
			Attention: make([]bool, len(rows)*seqLen),
			Examples:  slices.Clone(rows),
		}
		for r, i := range rows {
			row := b.IDs[r*seqLen : (r+1)*seqLen]
			n := copy(row, exs[i].IDs)
			for k := n; k < seqLen; k++ {
				row[k] = opts.PadID
			}
			copy(b.Mask[r*seqLen:], exs[i].Mask)
			for k := range n {
				b.Attention[r*seqLen+k] = true
			}
		}
		out = append(out, b)
	}
	if opts.Shuffle {
		rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x6261746368657321))
		rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	return out, nil
}
