//go:build cgo

package bindings

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
)

var chatMsgs = []ChatMessage{
	{Role: "system", Content: "You are a storyteller."},
	{Role: "user", Content: "Tell me a story."},
	{Role: "assistant", Content: "Once upon a time..."},
	{Role: "user", Content: "More!"},
}

const (
	chatmlWant = "<|im_start|>system\nYou are a storyteller.<|im_end|>\n" +
		"<|im_start|>user\nTell me a story.<|im_end|>\n" +
		"<|im_start|>assistant\nOnce upon a time...<|im_end|>\n" +
		"<|im_start|>user\nMore!<|im_end|>\n"
	phi3Want = "<|system|>\nYou are a storyteller.<|end|>\n" +
		"<|user|>\nTell me a story.<|end|>\n" +
		"<|assistant|>\nOnce upon a time...<|end|>\n" +
		"<|user|>\nMore!<|end|>\n"
)

func TestNamedChatTemplates(t *testing.T) {
	got, err := ApplyChatTemplate("chatml", chatMsgs, true)
	require.NoError(t, err)
	assert.Equal(t, chatmlWant+"<|im_start|>assistant\n", got)

	got, err = ApplyChatTemplate("chatml", chatMsgs, false)
	require.NoError(t, err)
	assert.Equal(t, chatmlWant, got)

	got, err = ApplyChatTemplate("phi3", chatMsgs, true)
	require.NoError(t, err)
	assert.Equal(t, phi3Want+"<|assistant|>\n", got)

	got, err = ApplyChatTemplate("chatml", nil, true)
	require.NoError(t, err)
	assert.Equal(t, "<|im_start|>assistant\n", got)

	// Output longer than the first buffer guess.
	long := []ChatMessage{{Role: "user", Content: strings.Repeat("a", 10_000)}}
	got, err = ApplyChatTemplate("chatml", long, false)
	require.NoError(t, err)
	assert.Len(t, got, 10_000+len("<|im_start|>user\n<|im_end|>\n"))

	_, err = ApplyChatTemplate("chatml", []ChatMessage{{Role: "user", Content: "a\x00b"}}, true)
	assert.ErrorContains(t, err, "NUL")

	_, err = ApplyChatTemplate("no-such-template", chatMsgs, true)
	assert.ErrorContains(t, err, "not one llama.cpp supports")

	assert.Contains(t, BuiltinChatTemplates(), "chatml")
	assert.Contains(t, BuiltinChatTemplates(), "phi3")
}

// TestModelChatTemplate uses vocabularies from llama.cpp's test models that carry their
// model's template; stories260K carries none.
func TestModelChatTemplate(t *testing.T) {
	m := loadStories(t)
	_, err := m.ApplyChatTemplate(chatMsgs, true)
	assert.ErrorIs(t, err, ErrNoChatTemplate)

	for _, tc := range []struct{ vocab, want string }{
		{"qwen2", chatmlWant + "<|im_start|>assistant\n"},
		{"phi-3", phi3Want + "<|assistant|>\n"},
	} {
		path := testenv.Vocab(t, tc.vocab)
		v, err := LoadModel(path, ModelOptions{VocabOnly: true})
		require.NoError(t, err)
		assert.NotEmpty(t, v.ChatTemplate(), tc.vocab)
		got, err := v.ApplyChatTemplate(chatMsgs, true)
		require.NoError(t, err, tc.vocab)
		assert.Equal(t, tc.want, got, tc.vocab)

		// The formatted prompt's markers are special tokens of that vocabulary.
		toks, err := v.Tokenize(got, false, true)
		require.NoError(t, err)
		plain, err := v.Tokenize(got, false, false)
		require.NoError(t, err)
		assert.Less(t, len(toks), len(plain), "%s: parseSpecial turns markers into single tokens", tc.vocab)
		require.NoError(t, v.Close())
		_, err = v.ApplyChatTemplate(chatMsgs, true)
		assert.ErrorIs(t, err, ErrClosed)
	}
}

// TestPromptTokensOneBOS checks that a prompt beginning with the BOS text, as chat
// templates write it, starts the sequence with one BOS, like a prompt without it.
func TestPromptTokensOneBOS(t *testing.T) {
	v, err := LoadModel(testenv.Vocab(t, "llama-spm"), ModelOptions{VocabOnly: true})
	require.NoError(t, err)
	defer v.Close()
	require.True(t, v.AddBOS())
	bos, err := v.Detokenize([]int32{v.BOS()}, true, false)
	require.NoError(t, err)
	plain, err := v.PromptTokens("[INST] Hi [/INST]", true)
	require.NoError(t, err)
	withText, err := v.PromptTokens(bos+"[INST] Hi [/INST]", true)
	require.NoError(t, err)
	assert.Equal(t, plain, withText)
	assert.Equal(t, v.BOS(), plain[0])
	assert.NotEqual(t, v.BOS(), plain[1])
	later, err := v.PromptTokens("[INST] Hi [/INST]", false)
	require.NoError(t, err)
	assert.Equal(t, plain[1:], later, "no BOS after the start of a sequence")
}
