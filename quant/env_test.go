package quant_test

import (
	"testing"

	"github.com/ecotune/ecotune/internal/testenv"
)

// tool returns llama.cpp's tool NAME, skipping the test when it is not built (see testenv).
func tool(t testing.TB, name string) string { t.Helper(); return testenv.Tool(t, name) }

// vocab returns llama.cpp's vocabulary ggml-vocab-NAME.gguf (see testenv).
func vocab(t testing.TB, name string) string { t.Helper(); return testenv.Vocab(t, name) }

// perplexity is llama-perplexity's estimate for model on testdata/perplexity.txt (see testenv).
func perplexity(t testing.TB, model string) float64 {
	t.Helper()
	return testenv.Perplexity(t, model, "testdata/perplexity.txt")
}
