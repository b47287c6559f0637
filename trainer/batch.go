package trainer

import "fmt"

// Batch is B right-padded sequences of T tokens with, per position, the token that
// position must predict, or -1 where the loss ignores it (prompt, padding, the end).
type Batch struct {
	B, T   int
	Tokens []int32 // B·T, sequence-major
	Labels []int32 // B·T: the next token when it is a target, else -1
	Real   int     // positions holding a real token (not padding)
	// Starts, in a packed batch (NewPackedBatch), holds for each position the position
	// in its sequence where its example begins: attention does not look before it and
	// rotary positions count from it, so that each example is computed as if alone.
	// Nil when each sequence is one example.
	Starts []int32
}

// Targets is the number of positions the loss counts.
func (b *Batch) Targets() int {
	n := 0
	for _, l := range b.Labels {
		if l >= 0 {
			n++
		}
	}
	return n
}

// targetRows lists the positions with a label and those labels.
func (b *Batch) targetRows() (rows, labels []int32) {
	for i, l := range b.Labels {
		if l >= 0 {
			rows = append(rows, int32(i))
			labels = append(labels, l)
		}
	}
	return rows, labels
}

// NewBatch packs examples into a batch of sequences of T tokens: each is cut to T+1
// tokens (its last one is only predicted, never input), then right-padded with pad.
// Position t of a sequence predicts token t+1 when Mask[t+1] is set.
func NewBatch(examples []Example, T int, pad int32) (*Batch, error) {
	if len(examples) == 0 || T < 1 {
		return nil, fmt.Errorf("trainer: a batch needs examples and a positive length, got %d and %d", len(examples), T)
	}
	b := &Batch{B: len(examples), T: T, Tokens: make([]int32, len(examples)*T), Labels: make([]int32, len(examples)*T)}
	for s, ex := range examples {
		if len(ex.Mask) != len(ex.IDs) {
			return nil, fmt.Errorf("trainer: example %d has %d tokens and %d mask entries", s, len(ex.IDs), len(ex.Mask))
		}
		for t := 0; t < T; t++ {
			i := s*T + t
			b.Tokens[i], b.Labels[i] = pad, -1
			if t < len(ex.IDs) {
				b.Real++
				b.Tokens[i] = ex.IDs[t]
				if t+1 < len(ex.IDs) && ex.Mask[t+1] {
					b.Labels[i] = ex.IDs[t+1]
				}
			}
		}
	}
	return b, nil
}

// exampleSpan is the number of input positions ex takes in a sequence of T: its tokens
// but the last, which is only predicted (at most T, and at least 1).
func exampleSpan(ex Example, T int) int {
	return max(1, min(len(ex.IDs), T+1)-1)
}

// NewPackedBatch lays the examples of each row end to end in one sequence of T inputs,
// right-padded with pad; an example takes exampleSpan positions and predicts as it
// would alone (its tokens cut to T+1, then only its own tokens, where Mask is set). The
// padding forms a document of its own.
func NewPackedBatch(rows [][]Example, T int, pad int32) (*Batch, error) {
	if len(rows) == 0 || T < 1 {
		return nil, fmt.Errorf("trainer: a batch needs rows and a positive length, got %d and %d", len(rows), T)
	}
	n := len(rows) * T
	b := &Batch{B: len(rows), T: T, Tokens: make([]int32, n), Labels: make([]int32, n), Starts: make([]int32, n)}
	for s, row := range rows {
		at := 0
		for e, ex := range row {
			if len(ex.Mask) != len(ex.IDs) {
				return nil, fmt.Errorf("trainer: row %d example %d has %d tokens and %d mask entries", s, e, len(ex.IDs), len(ex.Mask))
			}
			if len(ex.IDs) == 0 {
				return nil, fmt.Errorf("trainer: row %d example %d is empty", s, e)
			}
			span := exampleSpan(ex, T)
			if at+span > T {
				return nil, fmt.Errorf("trainer: row %d holds more than %d positions", s, T)
			}
			for t := 0; t < span; t++ {
				i := s*T + at + t
				b.Tokens[i], b.Labels[i], b.Starts[i] = ex.IDs[t], -1, int32(at)
				if t+1 < len(ex.IDs) && ex.Mask[t+1] {
					b.Labels[i] = ex.IDs[t+1]
				}
			}
			b.Real += span
			at += span
		}
		for t := at; t < T; t++ {
			i := s*T + t
			b.Tokens[i], b.Labels[i], b.Starts[i] = pad, -1, int32(at)
		}
	}
	return b, nil
}
