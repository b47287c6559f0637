//go:build cgo

package bindings

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
)

// storiesGreedy is the README's llama.cpp greedy output for "Once upon a time" (40 tokens).
const storiesGreedy = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."

// llamaCompletion runs build/cpu/bin/llama-completion and returns what it prints on
// stdout: the completion only, given --no-display-prompt, without the "\n\n" the tool
// prints when it finishes. It skips when the tool is missing unless ECOTUNE_REQUIRE_TOOLS=1.
//
// The tool writes through an asynchronous logger it deliberately never flushes at exit
// (llama.cpp issue 22142), so a run can lose its last lines; the closing "\n\n" marks a
// complete run, and incomplete ones are retried.
func llamaCompletion(t *testing.T, args ...string) string {
	t.Helper()
	tool := testenv.Tool(t, "llama-completion")
	var out string
	for attempt := 0; attempt < 10; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, tool, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		cancel()
		require.NoError(t, err, "llama-completion failed; stderr:\n%s", stderr.String())
		out = stdout.String()
		if strings.HasSuffix(out, "\n\n") {
			return strings.TrimSuffix(out, "\n\n")
		}
	}
	t.Fatalf("llama-completion never printed its closing blank line in 10 runs; last output %q", out)
	return ""
}

// TestGreedyMatchesLlamaCompletion generates 40 greedy tokens from stories260K and
// compares them with llama.cpp's own tool run with the same settings: context 256 (the
// size llama.cpp rounds any smaller request up to), no warm-up, fixed seed; with the
// picks scanned from the logits and found in the graph (GreedyInGraph, two threads).
func TestGreedyMatchesLlamaCompletion(t *testing.T) {
	requireStories(t)
	m := loadStories(t)
	want := llamaCompletion(t, "-m", storiesPath, "-p", "Once upon a time", "-n", "40",
		"--temp", "0", "--top-k", "1", "-s", "42", "-c", "256", "--no-warmup",
		"-no-cnv", "--no-display-prompt", "--simple-io", "-t", "1", "-tb", "1")
	t.Run("logits", func(t *testing.T) { checkGreedyCompletion(t, m, ContextOptions{NCtx: 256}, want) })
	t.Run("graph", func(t *testing.T) {
		checkGreedyCompletion(t, m, ContextOptions{NCtx: 256, Threads: 2, GreedyInGraph: true}, want)
	})
}

// checkGreedyCompletion is TestGreedyMatchesLlamaCompletion on a context of opts.
func checkGreedyCompletion(t *testing.T, m *Model, opts ContextOptions, want string) {
	const prompt, n = "Once upon a time", 40
	c := newContext(t, m, opts)
	var ids []int32
	var sb strings.Builder
	for tok, err := range Generate(context.Background(), c, prompt, GenerateOptions{MaxTokens: n, Sampler: SamplerOptions{Seed: 42}}) {
		require.NoError(t, err)
		ids = append(ids, tok.ID)
		sb.WriteString(tok.Text)
	}
	got := sb.String()
	assert.Len(t, ids, n)

	// Token for token: the concatenated pieces of the ids are the text.
	var pieces strings.Builder
	for _, id := range ids {
		p, err := m.TokenToPiece(id, false)
		require.NoError(t, err)
		pieces.WriteString(p)
	}
	assert.Equal(t, got, pieces.String())

	assert.Equal(t, storiesGreedy, prompt+got, "differs from the README's expected text")
	if readme, err := os.ReadFile(filepath.Join(filepath.Dir(storiesPath), "README.md")); err == nil {
		assert.Contains(t, strings.Join(strings.Fields(string(readme)), " "), storiesGreedy, "README's expected text changed")
	}

	assert.Equal(t, want, got, "differs from llama-completion")
}

func TestGenerateCancel(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, ContextOptions{NCtx: 256})
	const k = 5

	t.Run("inside the loop", func(t *testing.T) {
		require.NoError(t, c.ClearMemory())
		goctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		n, after := 0, 0
		var final error
		for _, err := range Generate(goctx, c, "Once upon a time", GenerateOptions{MaxTokens: 30}) {
			if err != nil {
				final = err
				break
			}
			n++
			if n > k {
				after++
			}
			if n == k {
				cancel()
			}
		}
		assert.ErrorIs(t, final, context.Canceled)
		assert.LessOrEqual(t, after, 1, "more than one token after cancellation")
		assert.Equal(t, 0, after, "the check before the next decode should stop at once")
	})

	t.Run("from another goroutine", func(t *testing.T) {
		require.NoError(t, c.ClearMemory())
		goctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cancelled := make(chan struct{})
		start := make(chan struct{})
		go func() {
			<-start
			cancel()
			close(cancelled)
		}()
		n, after := 0, 0
		var final error
		for _, err := range Generate(goctx, c, "Once upon a time", GenerateOptions{MaxTokens: 30}) {
			if err != nil {
				final = err
				break
			}
			n++
			select {
			case <-cancelled:
				after++
			default:
			}
			if n == k {
				close(start)
				<-cancelled
			}
		}
		assert.ErrorIs(t, final, context.Canceled)
		assert.LessOrEqual(t, after, 1, "more than one token after cancellation")
	})

	t.Run("already cancelled", func(t *testing.T) {
		require.NoError(t, c.ClearMemory())
		goctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := GenerateText(goctx, c, "Once upon a time", GenerateOptions{MaxTokens: 5})
		assert.ErrorIs(t, err, context.Canceled)
	})

	t.Run("consumer stops early", func(t *testing.T) {
		require.NoError(t, c.ClearMemory())
		n := 0
		for _, err := range Generate(context.Background(), c, "Once upon a time", GenerateOptions{}) {
			require.NoError(t, err)
			n++
			if n == 3 {
				break
			}
		}
		assert.Equal(t, 3, n)
	})
}

func TestGenerateStopAndContinue(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, ContextOptions{NCtx: 256})
	ctx := context.Background()

	// A stop string inside one token and one spanning several: output ends right before it.
	for _, tc := range []struct{ stop, want string }{
		{"Lily", ", there was a little girl named "},
		{"girl named", ", there was a little "},
		{"park.", ", there was a little girl named Lily. She loved to play outside in the "},
	} {
		require.NoError(t, c.ClearMemory())
		got, err := GenerateText(ctx, c, "Once upon a time", GenerateOptions{MaxTokens: 40, Stop: []string{"unused stop", tc.stop}})
		require.NoError(t, err)
		assert.Equal(t, tc.want, got, "stop %q", tc.stop)
	}

	// A held-back prefix of a stop string that never completes is released.
	require.NoError(t, c.ClearMemory())
	got, err := GenerateText(ctx, c, "Once upon a time", GenerateOptions{MaxTokens: 40, Stop: []string{"ball!"}})
	require.NoError(t, err)
	assert.Equal(t, strings.TrimPrefix(storiesGreedy, "Once upon a time"), got)

	// Continuing a sequence: the memory holds the prompt and every token but the last, so
	// feeding the last one back continues exactly where a single run would be.
	require.NoError(t, c.ClearMemory())
	var first []Token
	for tok, err := range Generate(ctx, c, "Once upon a time", GenerateOptions{MaxTokens: 10}) {
		require.NoError(t, err)
		first = append(first, tok)
	}
	require.Len(t, first, 10)
	rest, err := collect(GenerateTokens(ctx, c, []int32{first[9].ID}, GenerateOptions{MaxTokens: 30}))
	require.NoError(t, err)
	var sb strings.Builder
	for _, tok := range first {
		sb.WriteString(tok.Text)
	}
	assert.Equal(t, strings.TrimPrefix(storiesGreedy, "Once upon a time"), sb.String()+rest)

	// Errors: empty prompt, closed context.
	_, err = collect(GenerateTokens(ctx, c, nil, GenerateOptions{}))
	assert.Error(t, err)
	require.NoError(t, c.Close())
	_, err = GenerateText(ctx, c, "Once", GenerateOptions{})
	assert.ErrorIs(t, err, ErrClosed)
}

// collect concatenates a generation's text.
func collect(seq func(func(Token, error) bool)) (string, error) {
	var sb strings.Builder
	for tok, err := range seq {
		if err != nil {
			return sb.String(), err
		}
		sb.WriteString(tok.Text)
	}
	return sb.String(), nil
}

func TestGenerateSampling(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, ContextOptions{NCtx: 256})
	ctx := context.Background()
	opts := GenerateOptions{MaxTokens: 30, Sampler: SamplerOptions{
		Temperature: 0.9, TopK: 40, TopP: 0.95, MinP: 0.05, RepeatPenalty: 1.1, Seed: 7,
	}}
	a, err := GenerateText(ctx, c, "Once upon a time", opts)
	require.NoError(t, err)
	require.NoError(t, c.ClearMemory())
	b, err := GenerateText(ctx, c, "Once upon a time", opts)
	require.NoError(t, err)
	assert.Equal(t, a, b, "same seed, same text")
	assert.NotEmpty(t, a)

	// The context ends the generation when it is full, without an error.
	small := newContext(t, m, ContextOptions{NCtx: 256})
	var n int
	for _, err := range Generate(ctx, small, "Once upon a time", GenerateOptions{Sampler: SamplerOptions{Temperature: 1, Seed: 1}}) {
		require.NoError(t, err)
		n++
	}
	assert.LessOrEqual(t, n, 256)
}

func TestTextStream(t *testing.T) {
	t.Run("UTF-8 split across tokens", func(t *testing.T) {
		var s TextStream
		ni := "你" // e4 bd a0
		got, stop := s.Push(ni[:1])
		assert.Equal(t, "", got)
		assert.False(t, stop)
		got, _ = s.Push(ni[1:2])
		assert.Equal(t, "", got)
		got, _ = s.Push(ni[2:] + "a")
		assert.Equal(t, "你a", got)
		got, _ = s.Push("b" + ni[:2])
		assert.Equal(t, "b", got)
		assert.Equal(t, ni[:2], s.Flush(), "an unfinished character is released at the end")
	})
	t.Run("invalid bytes pass through", func(t *testing.T) {
		var s TextStream
		got, _ := s.Push("\xff\xfe")
		assert.Equal(t, "\xff\xfe", got)
	})
	t.Run("stop across pieces", func(t *testing.T) {
		s := NewTextStream([]string{"</end>"})
		got, stop := s.Push("hello </")
		assert.Equal(t, "hello ", got)
		assert.False(t, stop)
		got, stop = s.Push("en")
		assert.Equal(t, "", got)
		assert.False(t, stop)
		got, stop = s.Push("d> more")
		assert.Equal(t, "", got)
		assert.True(t, stop)
	})
	t.Run("false alarm released", func(t *testing.T) {
		s := NewTextStream([]string{"</end>"})
		got, _ := s.Push("a </e")
		assert.Equal(t, "a ", got)
		got, _ = s.Push("x")
		assert.Equal(t, "</ex", got)
	})
}

func TestGenerateErrorsAreFinal(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, ContextOptions{NCtx: 256})
	// A prompt longer than the context fails before decoding anything.
	long := strings.Repeat("Once upon a time ", 100)
	_, err := GenerateText(context.Background(), c, long, GenerateOptions{MaxTokens: 1})
	assert.True(t, errors.Is(err, ErrKVCacheFull), "got %v", err)
	_, err = GenerateText(context.Background(), c, "x", GenerateOptions{MaxTokens: -1})
	assert.Error(t, err)
	_, err = GenerateText(context.Background(), c, "x", GenerateOptions{Seq: 3})
	assert.Error(t, err, "sequence beyond NSeqMax")
}
