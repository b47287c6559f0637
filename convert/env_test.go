package convert_test

import (
	"log/slog"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/internal/llamaref"
)

func TestMain(m *testing.M) {
	bindings.SetLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}

// libllama is a model loaded by llama.cpp, the second opinion on a converted file.
type libllama struct {
	m *bindings.Model
	c *bindings.Context
}

// openLibllama loads path with keys and values kept in F32 (llama.cpp's default
// F16 cache would round them), one thread, no flash attention.
func openLibllama(t testing.TB, path string) *libllama {
	t.Helper()
	m, err := bindings.LoadModel(path, bindings.ModelOptions{NoRepack: true})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	c, err := bindings.NewContext(m, bindings.ContextOptions{NCtx: 128, NBatch: 128, Threads: 1,
		FlashAttn: bindings.FlashAttnDisabled, KVF32: true})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &libllama{m: m, c: c}
}

func (l *libllama) logits(t testing.TB, tokens []int32) []float32 {
	t.Helper()
	return llamaref.Flat(llamaref.Logits(t, l.c, tokens))
}

// vocabTokenizer tokenizes with a vocabulary-only libllama model, adding the
// special tokens the vocabulary says to add (what transformers' encode does).
type vocabTokenizer struct{ m *bindings.Model }

func (v vocabTokenizer) Tokenize(text string) ([]int32, error) {
	return v.m.Tokenize(text, true, false)
}

func loadVocab(t testing.TB, path string) *bindings.Model {
	t.Helper()
	m, err := bindings.LoadModel(path, bindings.ModelOptions{VocabOnly: true})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}
