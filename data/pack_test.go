package data

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func encodedOfLen(n int, base int32) Encoded {
	e := Encoded{IDs: make([]int32, n), Mask: make([]bool, n)}
	for i := range n {
		e.IDs[i] = base + int32(i)
		e.Mask[i] = i >= n/2
	}
	return e
}

func TestPack(t *testing.T) {
	lens := []int{5, 3, 8, 2, 6, 4, 1}
	var exs []Encoded
	for i, n := range lens {
		exs = append(exs, encodedOfLen(n, int32(100*(i+1))))
	}
	packed, err := Pack(exs, 10, -1)
	require.NoError(t, err)
	assert.Len(t, packed, 3, "29 tokens fit in 3 sequences of 10")
	seen := map[int]bool{}
	for _, p := range packed {
		require.Len(t, p.IDs, 10)
		require.Len(t, p.Mask, 10)
		at := 0
		for s, i := range p.Examples {
			assert.False(t, seen[i])
			seen[i] = true
			n := exs[i].Len()
			assert.Equal(t, exs[i].IDs, p.IDs[at:at+n])
			assert.Equal(t, exs[i].Mask, p.Mask[at:at+n])
			for k := range n {
				assert.Equal(t, int32(s+1), p.SegmentIDs[at+k])
				assert.Equal(t, int32(k), p.Positions[at+k], "positions restart per example")
			}
			at += n
		}
		for k := at; k < 10; k++ {
			assert.Equal(t, int32(-1), p.IDs[k])
			assert.False(t, p.Mask[k])
			assert.Zero(t, p.SegmentIDs[k])
		}
	}
	assert.Len(t, seen, len(exs))

	again, err := Pack(exs, 10, -1)
	require.NoError(t, err)
	assert.Equal(t, packed, again, "deterministic")

	_, err = Pack([]Encoded{encodedOfLen(11, 0)}, 10, 0)
	assert.ErrorContains(t, err, "more than the sequence length")
}

func TestBatches(t *testing.T) {
	lens := []int{7, 2, 9, 4, 4, 1, 12}
	var exs []Encoded
	for i, n := range lens {
		exs = append(exs, encodedOfLen(n, int32(100*(i+1))))
	}
	batches, err := Batches(exs, BatchOptions{BatchSize: 3, PadID: -1, PadMultiple: 4})
	require.NoError(t, err)
	require.Len(t, batches, 3)
	// Sorted by length: 1 2 4 | 4 7 9 | 12
	assert.Equal(t, []int{5, 1, 3}, batches[0].Examples)
	assert.Equal(t, 4, batches[0].SeqLen)
	assert.Equal(t, []int{4, 0, 2}, batches[1].Examples)
	assert.Equal(t, 12, batches[1].SeqLen, "9 rounded up to a multiple of 4")
	assert.Equal(t, 1, batches[2].Size)
	b := batches[1]
	for r, i := range b.Examples {
		n := exs[i].Len()
		row := b.IDs[r*b.SeqLen : (r+1)*b.SeqLen]
		assert.Equal(t, exs[i].IDs, row[:n])
		for k := n; k < b.SeqLen; k++ {
			assert.Equal(t, int32(-1), row[k])
			assert.False(t, b.Mask[r*b.SeqLen+k])
			assert.False(t, b.Attention[r*b.SeqLen+k])
		}
		assert.Equal(t, exs[i].Mask, b.Mask[r*b.SeqLen:r*b.SeqLen+n])
	}

	order := func(seed uint64) [][]int {
		bs, err := Batches(exs, BatchOptions{BatchSize: 2, Seed: seed, Shuffle: true})
		require.NoError(t, err)
		var out [][]int
		for _, b := range bs {
			out = append(out, b.Examples)
		}
		return out
	}
	assert.Equal(t, order(1), order(1), "seeded")
	assert.ElementsMatch(t, order(1), order(2), "same batches, other order")
	differs := false
	for s := uint64(2); s < 10 && !differs; s++ {
		differs = !assert.ObjectsAreEqual(order(1), order(s))
	}
	assert.True(t, differs, "the seed changes the order")

	_, err = Batches(exs, BatchOptions{})
	assert.Error(t, err)
}
