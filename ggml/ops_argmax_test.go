package ggml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// greedyRef is llama_sampler_greedy_apply's pick: each value compared with the one
// selected so far, the first kept among equals (a NaN first value stays selected).
func greedyRef(l []float32) int32 {
	sel := 0
	for i := 1; i < len(l); i++ {
		if l[i] > l[sel] {
			sel = i
		}
	}
	return int32(sel)
}

func TestArgmaxFirst(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 17))
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	negZero := float32(math.Copysign(0, -1))
	for _, n := range []int{1, 2, 3, 31, 64, 65, 1000, 1003} {
		// rows whose pick sits at a slice's start or end, a lane's, or is tied across
		// slices and lanes, with NaNs and infinities in the way
		var rows [][]float32
		row := func(f func(l []float32)) {
			l := make([]float32, n)
			for i := range l {
				l[i] = float32(r.IntN(200)) / 8 // ties are common
			}
			f(l)
			rows = append(rows, l)
		}
		row(func(l []float32) {})
		row(func(l []float32) { l[n-1] = 100 })
		row(func(l []float32) { l[0] = nan; l[n-1] = 100 })
		row(func(l []float32) {
			for i := range l {
				l[i] = float32(math.Inf(-1))
			}
		})
		row(func(l []float32) {
			for i := range l {
				l[i] = float32(math.Inf(-1))
			}
			l[n/2] = nan
		})
		row(func(l []float32) { l[n/2] = nan; l[n-1] = inf; l[n/3] = inf })
		row(func(l []float32) {
			for i := range l {
				l[i] = 0
			}
			l[0] = negZero // equal to +0: still the first of the largest
		})
		row(func(l []float32) {
			for i := range l {
				l[i] = -1
			}
			for i := n / 2; i < n; i += 7 {
				l[i] = 3 // the largest first appears in the second half
			}
		})
		row(func(l []float32) {
			for i := range l {
				l[i] = 5
			}
		})
		data := make([]float32, 0, n*len(rows))
		want := make([]int32, len(rows))
		for i, l := range rows {
			data = append(data, l...)
			want[i] = greedyRef(l)
		}
		for _, threads := range []int{1, 2, 3} {
			for _, slots := range []int{1, 2, 4} {
				t.Run(fmt.Sprintf("n%d_threads%d_slots%d", n, threads, slots), func(t *testing.T) {
					be, err := NewCPUBackend(threads)
					require.NoError(t, err)
					t.Cleanup(func() { be.Close() })
					e := newEnv(t, be)
					x := e.leaf(TypeF32, data, n, len(rows))
					out := e.compute(func(c *Context) []*Tensor { return []*Tensor{c.ArgmaxFirst(x, slots)} })
					got, err := out[0].I32()
					require.NoError(t, err)
					assert.Equal(t, want, got)
				})
			}
		}
	}
}
