package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
)

func TestChatPromptKeepsTheConversation(t *testing.T) {
	s := &chatSession{format: "alpaca", system: "Be brief.",
		turns: []bindings.ChatMessage{{Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello."}}}
	p, err := s.prompt("What is albedo?")
	require.NoError(t, err)
	assert.Equal(t, "Be brief.\n\n### Instruction:\nHi\n\n### Response:\nHello.\n\n### Instruction:\nWhat is albedo?\n\n### Response:\n", p)
}

func TestChatSession(t *testing.T) {
	requireModel(t)
	var out, errw strings.Builder
	model, err := bindings.LoadModel(storiesModel, bindings.ModelOptions{})
	require.NoError(t, err)
	defer model.Close()
	lctx, err := bindings.NewContext(model, bindings.ContextOptions{NCtx: 512, Threads: 1, BatchInvariant: true})
	require.NoError(t, err)
	defer lctx.Close()
	s := &chatSession{model: model, lctx: lctx, format: "alpaca", opts: bindings.GenerateOptions{MaxTokens: 6}}
	require.NoError(t, s.run(t.Context(), strings.NewReader("Once upon a time\n\n/reset\nThe dog\n/exit\nnever read\n"), &out, &errw))
	answers := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	assert.Len(t, answers, 2, "two answers: %q", out.String())
	assert.Len(t, s.turns, 2, "/reset dropped the first exchange")
	assert.Equal(t, "The dog", s.turns[0].Content)
	assert.Contains(t, errw.String(), "(conversation forgotten)")

	code, _, stderr := runCLI(t, "chat", "-m", storiesModel, "--format", "xml")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "--format")
}

// TestGenerateRefusesAModelLibllamaCannotLoad: a file libllama refuses ends generate and
// chat with exit status 1 and its error, not a panic in the cleanup of what was opened.
func TestGenerateRefusesAModelLibllamaCannotLoad(t *testing.T) {
	requireModel(t)
	b, err := os.ReadFile(storiesModel)
	require.NoError(t, err)
	truncated := filepath.Join(t.TempDir(), "truncated.gguf")
	require.NoError(t, os.WriteFile(truncated, b[:len(b)/2], 0o644))
	for _, args := range [][]string{{"generate", "-p", "Once"}, {"chat"}} {
		cmd := args[0]
		code, _, stderr := runCLI(t, append(args, "-m", truncated)...)
		assert.Equal(t, exitError, code, "%s: %s", cmd, stderr)
		assert.Contains(t, stderr, "truncated.gguf", cmd)
		assert.NotContains(t, stderr, "panic", cmd)
	}
}
