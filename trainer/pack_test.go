package trainer

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/ggml"
)

func TestPackRows(t *testing.T) {
	// Best fit decreasing by hand: 5 → new row (3 left); 4 → new row (4 left); 3 → the
	// row with 3 left; 3 → the row with 4 left (1 left); 2 → new row; 2 → it; 1 → the
	// row with 1 left.
	assert.Equal(t, [][]int{{0, 2}, {1, 3, 6}, {4, 5}}, packRows([]int{5, 4, 3, 3, 2, 2, 1}, 8))
	assert.Equal(t, [][]int{{0}, {1, 2}}, packRows([]int{12, 3, 4}, 8), "an item over capacity gets a row alone")

	r := rand.New(rand.NewPCG(1, 2))
	sizes := make([]int, 500)
	for i := range sizes {
		sizes[i] = 1 + r.IntN(150)
	}
	const capacity = 256
	rows := packRows(sizes, capacity)
	seen := make([]int, len(sizes))
	total := 0
	for i, row := range rows {
		sum := 0
		for _, j := range row {
			seen[j]++
			sum += sizes[j]
		}
		assert.LessOrEqual(t, sum, capacity, "row %d", i)
		assert.True(t, slices.IsSorted(row))
		if i > 0 {
			assert.Less(t, rows[i-1][0], row[0], "rows ordered by their first item")
		}
		total += sum
	}
	for j, n := range seen {
		require.Equal(t, 1, n, "item %d", j)
	}
	lower := (total + capacity - 1) / capacity
	assert.LessOrEqual(t, len(rows), lower+1, "best fit decreasing on these sizes is within a row of the bound")
	t.Logf("%d items in %d rows (at least %d): %.1f%% of places used", len(sizes), len(rows), lower, 100*float64(total)/float64(len(rows)*capacity))

	// The row count depends on the sizes alone (Train sets --epochs steps by it).
	for seed := range uint64(5) {
		shuffled := slices.Clone(sizes)
		rand.New(rand.NewPCG(seed, 9)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		assert.Len(t, packRows(shuffled, capacity), len(rows))
	}
}

func TestNewPackedBatch(t *testing.T) {
	a := Example{IDs: []int32{10, 11, 12, 13}, Mask: []bool{false, false, true, true}}
	b := Example{IDs: []int32{20, 21, 22}, Mask: []bool{false, true, true}}
	c := Example{IDs: []int32{30, 31, 32, 33, 34, 35, 36, 37, 38, 39}, Mask: []bool{true, true, true, true, true, true, true, true, true, true}}
	batch, err := NewPackedBatch([][]Example{{a, b}, {c}}, 6, 0)
	require.NoError(t, err)
	// a takes 3 positions (its last token is only predicted), b 2, and c is cut to 7
	// tokens, as NewBatch cuts it.
	assert.Equal(t, []int32{10, 11, 12, 20, 21, 0, 30, 31, 32, 33, 34, 35}, batch.Tokens)
	assert.Equal(t, []int32{-1, 12, 13, 21, 22, -1, 31, 32, 33, 34, 35, 36}, batch.Labels)
	assert.Equal(t, []int32{0, 0, 0, 3, 3, 5, 0, 0, 0, 0, 0, 0}, batch.Starts)
	assert.Equal(t, 11, batch.Real)
	require.NoError(t, checkStarts(batch.Starts, 2, 6))

	_, err = NewPackedBatch([][]Example{{a, b, a}}, 6, 0)
	assert.ErrorContains(t, err, "row 0 holds more than 6 positions")
	_, err = NewPackedBatch([][]Example{{a}, {{IDs: []int32{1, 2}, Mask: []bool{true}}}}, 6, 0)
	assert.ErrorContains(t, err, "row 1 example 0 has 2 tokens and 1 mask entries")
	assert.ErrorContains(t, checkStarts([]int32{0, 0, 1, 1}, 1, 4), "position 2: document start 1")
	assert.ErrorContains(t, checkStarts([]int32{0, 0, 0, 1}, 1, 4), "position 3: document start 1")
	assert.ErrorContains(t, checkStarts([]int32{0, -1}, 1, 2), "position 1: document start -1")
}

// packTestExamples are examples of varied lengths with prompts masked.
func packTestExamples() []Example {
	r := rand.New(rand.NewPCG(4, 4))
	var exs []Example
	for _, n := range []int{14, 9, 5, 21, 3, 12} {
		ex := Example{IDs: []int32{1}, Mask: []bool{false}}
		for len(ex.IDs) < n {
			ex.IDs = append(ex.IDs, int32(3+r.IntN(509)))
			ex.Mask = append(ex.Mask, len(ex.IDs) > n/3)
		}
		exs = append(exs, ex)
	}
	return exs
}

// TestPackedMatchesPadded checks, on every architecture, that packing examples into
// shared sequences changes nothing but the layout: the loss and the adapters' gradients
// equal those of the padded batch of the same examples (fused and generic ops), and the
// logits of each example equal libllama's for that example alone.
func TestPackedMatchesPadded(t *testing.T) {
	exs := packTestExamples()
	rows := [][]Example{{exs[0], exs[1], exs[2]}, {exs[3], exs[4]}, {exs[5]}}
	for _, ac := range archCases {
		t.Run(ac.name, func(t *testing.T) {
			path := writeArchModel(t, ac)
			// F32 products: packing may change F32 rounding alone, which a narrower
			// compute type would magnify into whole rounding steps of its own.
			m, l := loadWithRandomLoRA(t, path, ModelOptions{Threads: 2, ComputeType: "f32"})
			padded, err := NewBatch(exs, 20, 0)
			require.NoError(t, err)
			packed, err := NewPackedBatch(rows, 25, 0)
			require.NoError(t, err)
			require.Equal(t, padded.Targets(), packed.Targets())

			for _, generic := range []bool{false, true} {
				m.genericOps = generic
				wantLoss, want, _ := lossAndGradsWith(t, m, l, padded, checkpointNone)
				loss, got, _ := lossAndGradsWith(t, m, l, packed, checkpointNone)
				assert.InDelta(t, wantLoss, loss, 1e-5*wantLoss, "generic ops %t: loss", generic)
				worst := 0.0
				for name, g := range want {
					d, r := maxAbsDiff(got[name], g)
					require.Positive(t, r, name)
					assert.LessOrEqualf(t, d, 1e-4*r, "generic ops %t: %s: max diff %g, range %g", generic, name, d, r)
					worst = max(worst, d/r)
				}
				t.Logf("%s, generic ops %t: loss %.6f packed, %.6f padded; gradients within %.1e of their range", ac.name, generic, loss, wantLoss, worst)
			}
			m.genericOps = false

			// The logits of each example, against libllama's for it alone (with its F16
			// cache and ggml's GELU op, as in TestArchForwardMatchesLibllama).
			ref := newLlamaRef(t, path)
			m.kvType, m.geluOp = ggml.TypeF16, true
			defer func() { m.kvType, m.geluOp = ggml.TypeF32, false }()
			logits, err := m.logits(packed.Tokens, packed.Starts, packed.B, packed.T, nil)
			require.NoError(t, err)
			V, worst := m.HP.Vocab, 0.0
			for s, row := range rows {
				at := 0
				for _, ex := range row {
					want := ref.logits(t, ex.IDs)
					for i := 0; i < len(ex.IDs)-1; i++ {
						p := s*packed.T + at + i
						d, r := maxAbsDiff(logits[p*V:(p+1)*V], want[i])
						require.LessOrEqualf(t, d, 1e-4*r, "row %d, position %d: max diff %g, range %g", s, at+i, d, r)
						worst = max(worst, d/r)
					}
					at += len(ex.IDs) - 1
				}
			}
			t.Logf("%s: packed logits against libllama on each example alone: %.1e of the range", ac.name, worst)
			assert.False(t, math.IsNaN(worst))
		})
	}
}

// packData is stories260K's tokens cut into examples of 4 to 16 tokens (the first of
// each a prompt), about seven to a 64-position sequence when packed.
func packData(t *testing.T) (train, val Dataset) {
	t.Helper()
	ids := storiesTokens(t)
	r := rand.New(rand.NewPCG(3, 3))
	var exs Examples
	for at := 0; len(exs) < 150; {
		n := 4 + r.IntN(13)
		ex := Example{IDs: ids[at : at+n], Mask: make([]bool, n)}
		for i := 1; i < n; i++ {
			ex.Mask[i] = true
		}
		exs = append(exs, ex)
		at += n
	}
	return Split(exs, 0.1, 1)
}

// TestPackedTrainingResumes trains with packing, interrupted after step 6 and resumed,
// against the uninterrupted run (each epoch packs anew, and the run crosses one), and
// checks that --epochs counts packed sequences.
func TestPackedTrainingResumes(t *testing.T) {
	train, val := packData(t)
	sizes, err := spans(train, 64)
	require.NoError(t, err)
	rows := len(packRows(sizes, 64))
	require.Less(t, rows, 12*6, "the run must cross an epoch")
	require.Less(t, 3*rows, train.Len(), "several examples to a sequence")

	config := func(dir string) Config {
		cfg := ckptConfig(dir)
		cfg.Packing, cfg.SeqLen = true, 64
		return cfg
	}
	want, wantLosses, err := trainRun(t, config(t.TempDir()), train, val, context.Background())
	require.NoError(t, err)
	require.Len(t, wantLosses, 12)
	assert.InDelta(t, float64(12*6)/float64(rows), want.Epoch, 1e-12, "epochs count packed sequences")

	dir := t.TempDir()
	trainCancelledAfter(t, config(dir), 6, train, val)
	cfg := config(dir)
	cfg.Resume = true
	got, gotLosses, err := trainRun(t, cfg, train, val, context.Background())
	require.NoError(t, err)
	assertSameRun(t, want, wantLosses, got, gotLosses, 7)

	// The checkpoint records the setting: a resumed run cannot change it.
	cfg.Packing = false
	_, _, err = trainRun(t, cfg, train, val, context.Background())
	assert.ErrorContains(t, err, "field config.Packing is true, this run asks for false")

	cfg = config("")
	cfg.RunDir, cfg.MetricsPath, cfg.SaveEvery = "", "", 0
	cfg.Epochs, cfg.EvalEvery = 2, -1
	res, _, err := trainRun(t, cfg, train, nil, context.Background())
	require.NoError(t, err)
	assert.Equal(t, (2*rows+5)/6, res.Steps, "⌈2 epochs of %d sequences / 6 per step⌉", rows)
	t.Logf("%d examples in %d packed sequences of 64; 2 epochs = %d steps", train.Len(), rows, res.Steps)
}
