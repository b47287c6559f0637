package convert_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/convert"
	"github.com/ecotune/ecotune/internal/llamaref"
	"github.com/ecotune/ecotune/internal/testenv"
)

// TestConvertMatchesFloat64Forward converts a checkpoint built in the test
// (hfmodel_test.go) and compares libllama's logits for the GGUF with the
// float64 forward pass of the checkpoint itself.
func TestConvertMatchesFloat64Forward(t *testing.T) {
	cases := []struct {
		arch   string
		shards int
		// tol is the allowed max |libllama - float64| as a share of the logit range.
		// libllama computes in float32 (F32 weights rounded from float64, F32 keys
		// and values here): measured 2-3e-7 of the range over two layers, so 1e-5
		// leaves room while a wrong row order, norm or bias misses by 1e-2 and more. phi2
		// and gemma2 use GELU, which libllama's CPU backend reads from an f16 table
		// (input and output rounded to f16, up to 2⁻¹¹ relative): 2e-3.
		tol float64
	}{
		{"llama", 2, 1e-5},
		{"qwen2", 1, 1e-5},
		{"phi3", 1, 1e-5},
		// Both pick the short factors: transformers because the sequence is within the
		// original context (512), libllama because its context is (128, padded to 256).
		{"phi3-longrope", 1, 1e-5},
		{"phi2", 1, 2e-3},
		{"gemma2", 3, 2e-3},
	}
	for _, tc := range cases {
		t.Run(tc.arch, func(t *testing.T) {
			m := newHFModel(tc.arch, 5)
			dir := filepath.Join(t.TempDir(), tc.arch)
			m.write(t, dir, tc.shards)
			switch tc.arch {
			case "phi2":
				writeBPEFrom(t, testenv.Vocab(t, "gpt-2"), dir)
			case "phi3", "phi3-longrope":
				writeSPMFrom(t, testenv.Vocab(t, "phi-3"), dir)
			default:
				writeSPMFrom(t, testenv.Vocab(t, "llama-spm"), dir)
			}
			out := filepath.Join(t.TempDir(), "model.gguf")
			sum, err := convert.Convert(context.Background(), convert.Options{Dir: dir, Out: out})
			require.NoError(t, err)
			require.Equal(t, m.arch, sum.Arch)

			l := openLibllama(t, out)
			tokens := []int32{1, 450, 3815, 1600, 29892, 263, 1601, 29879, 1058, 8, 29973, 310}
			if tc.arch == "phi2" {
				tokens = []int32{464, 5916, 262, 3332, 11, 257, 1310, 1110, 284, 8, 30, 50000}
			}
			got := l.logits(t, tokens)
			var want []float32
			for _, row := range m.forward(tokens) {
				for _, v := range row {
					want = append(want, float32(v))
				}
			}
			d, rng := llamaref.MaxAbsDiff(got, want)
			t.Logf("%s: %d tokens, max |libllama - float64 HF forward| = %.2e of the logit range %.2f", tc.arch, len(tokens), d/rng, rng)
			assert.LessOrEqual(t, d, tc.tol*rng)
			if tc.arch == "llama" {
				// Control: a converter that forgot llama's q/k row order would give the
				// logits of this checkpoint with its rows in GGUF's order.
				unpermuted(m)
				var wrong []float32
				for _, row := range m.forward(tokens) {
					for _, v := range row {
						wrong = append(wrong, float32(v))
					}
				}
				dw, _ := llamaref.MaxAbsDiff(got, wrong)
				t.Logf("control, q/k rows not reordered: %.2e of the range", dw/rng)
				assert.Greater(t, dw, 1e-2*rng)
			}
		})
	}
}

// unpermuted puts the rows of every q_proj and k_proj in GGUF's order: within
// each head, the two halves of the rotated pairs interleaved.
func unpermuted(m *hfModel) {
	for name, w := range m.w {
		heads := 0
		switch {
		case strings.HasSuffix(name, "q_proj.weight"):
			heads = m.heads
		case strings.HasSuffix(name, "k_proj.weight"):
			heads = m.kv
		default:
			continue
		}
		cols := m.embd
		rows := len(w) / cols
		d := rows / heads
		out := make([]float64, len(w))
		for h := range heads {
			for i := range d / 2 {
				for j := range 2 {
					copy(out[(h*d+2*i+j)*cols:][:cols], w[(h*d+j*d/2+i)*cols:][:cols])
				}
			}
		}
		m.w[name] = out
	}
}
