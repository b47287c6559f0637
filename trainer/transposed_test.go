package trainer

import (
	"cmp"
	"slices"
	"testing"

	"github.com/ecotune/ecotune/ggml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKeepTransposed checks that kept transposes give the backward pass the same
// gradients as transposing at every step, and that the graph then transposes no weight:
// with F32 products, where the copy is the weight's own bits, and with the default compute
// type, where an F32 weight's copy is rounded to F16 or BF16 as the step's Cast would.
func TestKeepTransposed(t *testing.T) {
	requireStories(t)
	for _, ct := range []string{"f32", ""} {
		t.Run("compute "+cmp.Or(ct, "default"), func(t *testing.T) {
			plain, err := loadTestModel(storiesPath, ModelOptions{Threads: 1, ComputeType: ct})
			require.NoError(t, err)
			defer plain.Close()
			kept, err := loadTestModel(storiesPath, ModelOptions{Threads: 1, ComputeType: ct, KeepTransposed: true})
			require.NoError(t, err)
			defer kept.Close()
			checkKeptTransposed(t, plain, kept)
		})
	}
}

func checkKeptTransposed(t *testing.T, plain, kept *Model) {
	require.NotEmpty(t, kept.transposed)
	w := kept.Weight("blk.1.ffn_up.weight")
	wt := kept.transposed["blk.1.ffn_up.weight"]
	require.NotNil(t, wt)
	require.Equal(t, ggml.TypeF32, w.Type())
	want := ggml.TypeF32
	if ct := kept.ComputeType(); ct == ggml.TypeF16 || ct == ggml.TypeBF16 {
		want = ct
	}
	require.Equal(t, want, wt.Type(), "the copy's type, compute type %s", kept.ComputeType())
	a, err := w.F32()
	require.NoError(t, err)
	if want != ggml.TypeF32 {
		b, err := ggml.Quantize(want, a, w.Ne(0))
		require.NoError(t, err)
		a, err = ggml.Dequantize(want, b, len(a))
		require.NoError(t, err)
	}
	at, err := wt.F32()
	require.NoError(t, err)
	in, out := w.Ne(0), w.Ne(1)
	for r := 0; r < out; r += 7 {
		for c := 0; c < in; c += 5 {
			require.Equal(t, a[r*in+c], at[c*out+r])
		}
	}

	b := testBatch(t)
	var grads [2]map[string][]float32
	var losses [2]float64
	for i, m := range []*Model{plain, kept} {
		l, err := NewLoRA(m, LoRAConfig{Rank: 8, Alpha: 16, Targets: []string{"all"}, Seed: 5})
		require.NoError(t, err)
		defer l.Close()
		randomizeB(t, l, 3, 0.05)
		losses[i], grads[i] = lossAndGrads(t, m, l, b)
	}
	assert.Equal(t, losses[0], losses[1])

	l, err := NewLoRA(kept, LoRAConfig{Rank: 8, Alpha: 16, Targets: []string{"all"}, Seed: 5})
	require.NoError(t, err)
	defer l.Close()
	s, _ := testStep(t, kept, l, l.params(), b, 0, checkpointNone)
	for i := 0; i < s.g.Len(); i++ {
		n := s.g.Node(i)
		if n.Op() != "CONT" && n.Op() != "CPY" {
			continue
		}
		root := n.Src(0) // through views to the tensor copied
		for slices.Contains([]string{"VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE"}, root.Op()) {
			root = root.Src(0)
		}
		assert.Falsef(t, kept.transposed[root.Name()] != nil, "%s is still transposed in the step", root.Name())
	}
	for name, g := range grads[0] {
		require.Truef(t, slices.Equal(g, grads[1][name]), "%s", name)
	}
}

func TestTransposeBytes(t *testing.T) {
	for _, size := range []int{2, 4} {
		const cols, rows = 70, 131 // not multiples of the tile
		src := make([]byte, cols*rows*size)
		for i := range src {
			src[i] = byte(i*7 + i/size)
		}
		got := transposeBytes(src, cols, rows, size)
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				require.Equal(t, src[(r*cols+c)*size:(r*cols+c+1)*size], got[(c*rows+r)*size:(c*rows+r+1)*size], "size %d (%d, %d)", size, r, c)
			}
		}
	}
}

// BenchmarkTransposeBytes is the load-time cost of --keep-transposed per byte of weights.
func BenchmarkTransposeBytes(b *testing.B) {
	src := make([]byte, 4*576*1536)
	b.SetBytes(int64(len(src)))
	for range b.N {
		transposeBytes(src, 576, 1536, 4)
	}
}
