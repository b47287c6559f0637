//go:build cgo

package bindings

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
)

// vocabCase is one tokenizer test vector.
type vocabCase struct {
	input string
	want  []int32
}

// readVocabTests parses X.gguf.inp / X.gguf.out exactly as llama.cpp's
// tests/test-tokenizer-0.cpp does: inputs are separated by "\n__ggml_vocab_test__\n" (a
// trailing separator ends the list, no trimming of inputs), each output line is stripped
// of surrounding whitespace and split on single spaces, and cases are kept in a map keyed
// by input, so a repeated input keeps its last expectation.
func readVocabTests(t *testing.T, base string) map[string][]int32 {
	t.Helper()
	raw, err := os.ReadFile(base + ".inp")
	require.NoError(t, err)
	outRaw, err := os.ReadFile(base + ".out")
	require.NoError(t, err)

	const sep = "\n__ggml_vocab_test__\n"
	var inputs []string
	s := string(raw)
	for pos := 0; pos < len(s); {
		next := strings.Index(s[pos:], sep)
		if next < 0 {
			inputs = append(inputs, s[pos:])
			break
		}
		inputs = append(inputs, s[pos:pos+next])
		pos += next + len(sep)
	}

	// std::getline splits on '\n' and drops a final empty line.
	outLines := strings.Split(string(outRaw), "\n")
	if n := len(outLines); n > 0 && outLines[n-1] == "" {
		outLines = outLines[:n-1]
	}
	require.Len(t, outLines, len(inputs), "%s: input and output files have different numbers of tests", base)

	tests := map[string][]int32{}
	for i, in := range inputs {
		o := strings.TrimSpace(outLines[i]) // string_strip
		toks := []int32{}
		for pos := 0; pos < len(o); {
			next := strings.IndexByte(o[pos:], ' ')
			if next < 0 {
				next = len(o) - pos
			}
			v, err := strconv.Atoi(o[pos : pos+next])
			require.NoError(t, err, "%s line %d", base, i+1)
			toks = append(toks, int32(v))
			pos += next + 1
		}
		tests[in] = toks
	}
	return tests
}

// TestTokenizerVectors runs llama.cpp's tokenizer test vectors for every vocabulary that
// has them, with the flags test-tokenizer-0 uses: addSpecial false, parseSpecial false.
func TestTokenizerVectors(t *testing.T) {
	models := testenv.Require(t, filepath.Join(testenv.Root(t), "third_party", "llama.cpp", "models"), "llama.cpp's vocabularies")
	vocabs, _ := filepath.Glob(filepath.Join(models, "ggml-vocab-*.gguf"))
	if len(vocabs) == 0 {
		t.Skipf("no llama.cpp vocabularies under %s (third_party/llama.cpp is absent; run make)", models)
	}
	ran := 0
	for _, vocab := range vocabs {
		if _, err := os.Stat(vocab + ".inp"); err != nil {
			continue
		}
		ran++
		t.Run(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(vocab), "ggml-vocab-"), ".gguf"), func(t *testing.T) {
			t.Parallel()
			tests := readVocabTests(t, vocab)
			m, err := LoadModel(vocab, ModelOptions{VocabOnly: true})
			require.NoError(t, err)
			defer m.Close()
			for in, want := range tests {
				got, err := m.Tokenize(in, false, false)
				require.NoError(t, err)
				assert.Equal(t, want, got, "input %q", in)
			}
		})
	}
	require.NotZero(t, ran, "no vocabulary under %s has .inp/.out test vectors", models)
}

func TestTokenizeStories(t *testing.T) {
	m := loadStories(t)

	toks, err := m.Tokenize("Once upon a time", true, true)
	require.NoError(t, err)
	require.NotEmpty(t, toks)
	assert.Equal(t, m.BOS(), toks[0], "SPM vocabularies add BOS")

	noBOS, err := m.Tokenize("Once upon a time", false, false)
	require.NoError(t, err)
	assert.Equal(t, toks[1:], noBOS)

	// llama.cpp drops SPM's leading space only when no BOS precedes the text.
	text, err := m.Detokenize(noBOS, false, false)
	require.NoError(t, err)
	assert.Equal(t, "Once upon a time", text)
	text, err = m.Detokenize(toks, false, true)
	require.NoError(t, err)
	assert.Equal(t, "<s> Once upon a time", text)
	text, err = m.Detokenize(toks, true, false)
	require.NoError(t, err)
	assert.Equal(t, " Once upon a time", text)

	var sb strings.Builder
	for _, tok := range noBOS {
		p, err := m.TokenToPiece(tok, false)
		require.NoError(t, err)
		sb.WriteString(p)
	}
	assert.Equal(t, " Once upon a time", sb.String(), "SPM pieces carry the leading-space marker as a space")

	// Control tokens render only when asked for.
	p, err := m.TokenToPiece(m.BOS(), false)
	require.NoError(t, err)
	assert.Empty(t, p)
	p, err = m.TokenToPiece(m.BOS(), true)
	require.NoError(t, err)
	assert.Equal(t, "<s>", p)

	empty, err := m.Tokenize("", false, false)
	require.NoError(t, err)
	assert.Empty(t, empty)

	// A long text exercises the first-guess buffer; ids outside the vocabulary are refused in Go.
	long := strings.Repeat("The cat sat on the mat. ", 200)
	lt, err := m.Tokenize(long, false, false)
	require.NoError(t, err)
	back, err := m.Detokenize(lt, false, false)
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSuffix(long, " "), strings.TrimSuffix(back, " "))
	_, err = m.TokenToPiece(int32(m.VocabSize()), false)
	assert.Error(t, err)
	_, err = m.Detokenize([]int32{-5}, false, false)
	assert.Error(t, err)
	assert.False(t, m.IsEOG(-1))
	assert.True(t, m.IsEOG(m.EOS()))
}
