//go:build cgo

package bindings

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/stretchr/testify/require"
)

// decodeAllRows decodes prompt on a fresh context with every position's logits, for
// samplers to pick from row by row.
func decodeAllRows(t testing.TB, m *Model, prompt string) (*Context, int) {
	t.Helper()
	toks, err := m.PromptTokens(prompt, true)
	require.NoError(t, err)
	c := newContext(t, m, ContextOptions{NCtx: 256})
	b, err := NewBatch(len(toks), 1)
	require.NoError(t, err)
	defer b.Close()
	for i, tok := range toks {
		require.NoError(t, b.Add(tok, int32(i), []int32{0}, true))
	}
	require.NoError(t, c.Decode(b))
	return c, len(toks)
}

// TestGreedySample checks that a greedy sampler's own argmax picks what llama.cpp's
// greedy chain picks (its llama_sampler_sample path) at every row, and the first of the
// largest logits.
func TestGreedySample(t *testing.T) {
	for _, path := range []string{storiesPath, testenv.Testdata(t, "llama-2-tiny-random.gguf")} {
		m, err := LoadModel(testenv.Require(t, path, "the test model "+path), ModelOptions{})
		require.NoError(t, err)
		defer m.Close()
		c, rows := decodeAllRows(t, m, "Once upon a time, in a small village by the sea, there lived an old fisherman")
		fast, err := NewSampler(m, SamplerOptions{})
		require.NoError(t, err)
		defer fast.Close()
		require.True(t, fast.greedy)
		chain, err := NewSampler(m, SamplerOptions{})
		require.NoError(t, err)
		defer chain.Close()
		chain.greedy = false
		for i := range rows {
			got, err := fast.Sample(c, i)
			require.NoError(t, err)
			want, err := chain.Sample(c, i)
			require.NoError(t, err)
			require.Equal(t, want, got, "%s row %d", path, i)
			l, err := c.Logits(i)
			require.NoError(t, err)
			first := 0
			for j, v := range l {
				if v > l[first] {
					first = j
				}
			}
			require.Equal(t, int32(first), got, "%s row %d", path, i)
		}
		for _, opts := range []SamplerOptions{{Temperature: 0.5}, {RepeatPenalty: 1.1}, {Grammar: JSONGrammar}} {
			s, err := NewSampler(m, opts)
			require.NoError(t, err)
			require.False(t, s.greedy, "%+v keeps llama.cpp's chain", opts)
			s.Close()
		}
	}
}

// TestArgmax checks the greedy argmax against llama_sampler_greedy_apply's loop written
// out in Go, on logits with ties, signed zeros, infinities and NaNs, at lengths around the
// lanes (16, or 32 in the x86 builds' vector copies: whichever this CPU runs).
func TestArgmax(t *testing.T) {
	greedy := func(l []float32) int32 { // llama_sampler_greedy_apply
		sel := 0
		for i := 1; i < len(l); i++ {
			if l[i] > l[sel] {
				sel = i
			}
		}
		return int32(sel)
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	rng := rand.New(rand.NewPCG(3, 4))
	values := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 2, 2, inf, -inf, nan, 0.5}
	for n := 1; n <= 70; n++ {
		for range 200 {
			l := make([]float32, n)
			for i := range l {
				l[i] = values[rng.IntN(len(values))]
			}
			require.Equal(t, greedy(l), argmax(l), "%v", l)
		}
	}
	l := make([]float32, 32000)
	for i := range l {
		l[i] = rng.Float32()
	}
	l[31999], l[17] = 2, 2 // the first of two largest
	require.Equal(t, int32(17), argmax(l))
}

// BenchmarkGreedySample is one greedy pick over a 32,000-token vocabulary: the sampler's
// own argmax against llama.cpp's chain, which copies every logit into candidates first.
func BenchmarkGreedySample(b *testing.B) {
	m, err := LoadModel(testenv.Testdata(b, "llama-2-tiny-random.gguf"), ModelOptions{})
	require.NoError(b, err)
	defer m.Close()
	c, _ := decodeAllRows(b, m, "Once upon a time")
	for _, greedy := range []bool{true, false} {
		s, err := NewSampler(m, SamplerOptions{})
		require.NoError(b, err)
		s.greedy = greedy
		name := "chain"
		if greedy {
			name = "argmax"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Sample(c, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		s.Close()
	}
}
