package eval

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/testenv"
)

// storiesGreedy is llama.cpp's own greedy output for "Once upon a time" (40 tokens),
// from testdata/README.md: an answer computed outside this code.
const storiesGreedy = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."

// storyPrompts are eight prompts of different lengths, so sequences start, stop and
// prefill at different steps.
var storyPrompts = []string{
	"Once upon a time",
	"The dog ran to the park",
	"Lily and Tom wanted to build a big castle out of sand. They",
	"One day",
	"The sun was hot and the little bird was thirsty, so",
	"Mom said",
	"There was a big red ball in the garden. Ben saw it and",
	"The cat",
}

// generateAlone runs bindings.Generate on each prompt by itself, on a fresh one-sequence
// context: the one-at-a-time reference batched generation must reproduce.
func generateAlone(t *testing.T, m *bindings.Model, prompts []string, opts GenerateOptions) []Generation {
	t.Helper()
	c := newContext(t, m, bindings.ContextOptions{NCtx: 256, BatchInvariant: true})
	out := make([]Generation, len(prompts))
	for i, p := range prompts {
		require.NoError(t, c.ClearMemory())
		ids, err := m.Tokenize(p, true, true)
		require.NoError(t, err)
		var sb strings.Builder
		n := 0
		for tok, err := range bindings.Generate(context.Background(), c, p, bindings.GenerateOptions{
			MaxTokens: opts.MaxTokens, Sampler: opts.Sampler, Stop: opts.Stop}) {
			require.NoError(t, err)
			sb.WriteString(tok.Text)
			if !m.IsEOG(tok.ID) {
				n++
			}
		}
		out[i] = Generation{Text: sb.String(), PromptTokens: len(ids), Tokens: n}
	}
	return out
}

func TestGenerateMatchesOneAtATime(t *testing.T) {
	m := loadStories(t)
	cases := []struct {
		name     string
		parallel int
		opts     GenerateOptions
	}{
		{"greedy, all eight together", 8, GenerateOptions{MaxTokens: 40}},
		{"greedy, three slots refilled as prompts finish", 3, GenerateOptions{MaxTokens: 40, Stop: []string{"."}}},
		{"seeded sampling", 8, GenerateOptions{MaxTokens: 30, Sampler: bindings.SamplerOptions{Temperature: 0.9, TopK: 40, Seed: 7}}},
		{"penalties and stop strings", 5, GenerateOptions{MaxTokens: 30, Stop: []string{"park", "\n"},
			Sampler: bindings.SamplerOptions{RepeatPenalty: 1.3}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newContext(t, m, BatchContextOptions(tc.parallel, 256, 1))
			got, err := Generate(context.Background(), c, storyPrompts, tc.opts)
			require.NoError(t, err)
			want := generateAlone(t, m, storyPrompts, tc.opts)
			require.Len(t, got, len(want))
			for i := range want {
				assert.Equal(t, want[i].Text, got[i].Text, "prompt %d %q", i, storyPrompts[i])
				assert.Equal(t, want[i].PromptTokens, got[i].PromptTokens, "prompt %d", i)
				assert.Equal(t, want[i].Tokens, got[i].Tokens, "prompt %d", i)
				assert.NotEmpty(t, got[i].Finish)
			}
			// The memory is left empty for the next caller.
			for s := int32(0); s < int32(tc.parallel); s++ {
				_, hi, err := c.SeqPosRange(s)
				require.NoError(t, err)
				assert.Equal(t, int32(-1), hi, "sequence %d still holds tokens", s)
			}
		})
	}
}

func TestGenerateAgainstLlamaCpp(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, BatchContextOptions(4, 256, 1))
	// The README prompt among others, so the batch is not a single sequence.
	prompts := []string{"The dog ran to the park", "Once upon a time", "One day", "Mom said"}
	got, err := Generate(context.Background(), c, prompts, GenerateOptions{MaxTokens: 40})
	require.NoError(t, err)
	assert.Equal(t, storiesGreedy, prompts[1]+got[1].Text)
	assert.Equal(t, 40, got[1].Tokens)
	assert.Equal(t, FinishLength, got[1].Finish)
	assert.Equal(t, 5, got[1].PromptTokens, "BOS + Once upon a time")
}

func TestGenerateFinishReasons(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, BatchContextOptions(2, 256, 1))
	greedy := strings.TrimPrefix(storiesGreedy, "Once upon a time")

	got, err := Generate(context.Background(), c, []string{"Once upon a time"}, GenerateOptions{MaxTokens: 40, Stop: []string{"Lily", "girl"}})
	require.NoError(t, err)
	// "girl" comes first in the text, though "Lily" is first in the list.
	assert.Equal(t, greedy[:strings.Index(greedy, "girl")], got[0].Text)
	assert.Equal(t, FinishStop, got[0].Finish)

	// A stop string that spans two tokens (", there" is "," + "▁there").
	got, err = Generate(context.Background(), c, []string{"Once upon a time"}, GenerateOptions{MaxTokens: 40, Stop: []string{", there"}})
	require.NoError(t, err)
	assert.Equal(t, "", got[0].Text)
	assert.Equal(t, FinishStop, got[0].Finish)

	// Without a limit the model writes until its end-of-story token or the context.
	got, err = Generate(context.Background(), c, []string{"Once upon a time"}, GenerateOptions{})
	require.NoError(t, err)
	assert.Contains(t, []string{FinishEOG, FinishContext}, got[0].Finish)
	if got[0].Finish == FinishContext {
		assert.Equal(t, 256, got[0].PromptTokens+got[0].Tokens-1, "the last token is sampled but not decoded")
	}

	// A prompt that does not fit a sequence fails before decoding.
	long := strings.Repeat("the dog ran ", 200)
	_, err = Generate(context.Background(), c, []string{"hi", long}, GenerateOptions{MaxTokens: 4})
	require.ErrorIs(t, err, bindings.ErrKVCacheFull)
	assert.Contains(t, err.Error(), "prompt 1")

	// Cancellation stops before the next decode.
	goctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Generate(goctx, c, []string{"hi"}, GenerateOptions{MaxTokens: 4})
	require.ErrorIs(t, err, context.Canceled)

	// The model has no chat template.
	_, err = Generate(context.Background(), c, []string{"hi"}, GenerateOptions{Chat: true})
	require.ErrorIs(t, err, bindings.ErrNoChatTemplate)

	_, err = Generate(context.Background(), c, []string{"hi"}, GenerateOptions{Parallel: 3})
	require.Error(t, err, "more parallel sequences than the context holds")
}

func TestFindStop(t *testing.T) {
	for _, tc := range []struct {
		text  string
		from  int
		stops []string
		want  int
	}{
		{"hello world", 0, []string{"world"}, 6},
		{"hello world", 8, []string{"world"}, 6}, // a match ending in the new bytes
		{"hello world", 11, []string{"world"}, -1},
		{"a.b\nc", 0, []string{"\n", "."}, 1},
		{"abc", 0, []string{""}, -1},
	} {
		got, ok := findStop([]byte(tc.text), tc.from, tc.stops)
		assert.Equal(t, tc.want >= 0, ok, "%q", tc.text)
		if ok {
			assert.Equal(t, tc.want, got, "%q", tc.text)
		}
	}
}

// benchGenerate generates storyPrompts (32 tokens each at most) on model path with
// the given parallelism and reports tokens/s.
func benchGenerate(b *testing.B, path string, parallel int) {
	m, err := bindings.LoadModel(path, bindings.ModelOptions{})
	require.NoError(b, err)
	defer m.Close()
	c := newContext(b, m, BatchContextOptions(parallel, 256, runtime.NumCPU()))
	opts := GenerateOptions{MaxTokens: 32, Parallel: parallel}
	tokens := 0
	start, cpu0 := time.Now(), processCPU()
	for b.Loop() {
		got, err := Generate(context.Background(), c, storyPrompts, opts)
		require.NoError(b, err)
		for _, g := range got {
			tokens += g.Tokens
		}
	}
	b.ReportMetric(float64(tokens)/time.Since(start).Seconds(), "tokens/s")
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(tokens)/cpu.Seconds(), "tokens/cpu-s")
	}
}

// benchModel returns the path of a generation benchmark's model: the real
// stories260K, whose tiny 8-wide heads make attention a large share of each token's
// cost, or a random-weight 27M-parameter llama (dim 512, 8 layers, F32, stories260K's
// vocabulary) written once per run, where reading the weights dominates, as in real
// models.
func benchModel(b *testing.B, name string) string {
	testenv.Stories(b)
	if name == "stories260K" {
		return storiesPath
	}
	benchModelOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ecotune-eval-bench-")
		if err != nil {
			benchModelErr = err
			return
		}
		benchModelPath = filepath.Join(dir, "llama-27m.gguf")
		benchModelErr = factory.Init(factory.Spec{Arch: "llama", Embd: 512, Layers: 8, Heads: 8, FF: 1536,
			Context: 2048, VocabFile: storiesPath, Seed: 1}, benchModelPath)
	})
	require.NoError(b, benchModelErr)
	return benchModelPath
}

var (
	benchModelOnce sync.Once
	benchModelPath string
	benchModelErr  error
)

// BenchmarkGenerate8Batched decodes the eight prompts together, one sequence each.
func BenchmarkGenerate8Batched(b *testing.B) {
	for _, name := range []string{"stories260K", "llama-27M"} {
		b.Run(name, func(b *testing.B) { benchGenerate(b, benchModel(b, name), 8) })
	}
}

// BenchmarkGenerate8Sequential decodes the same eight prompts one after another.
func BenchmarkGenerate8Sequential(b *testing.B) {
	for _, name := range []string{"stories260K", "llama-27M"} {
		b.Run(name, func(b *testing.B) { benchGenerate(b, benchModel(b, name), 1) })
	}
}

// BenchmarkGenerate8Speedup alternates the batched and the one-after-another runs of
// the eight prompts, both on every core of the machine as the CLI runs them, and reports how many times faster batching is, in wall time and
// in process CPU time (which the other jobs of a shared machine inflate less). Both
// runs produce the same outputs (TestGenerateMatchesOneAtATime), so they do the same
// work.
func BenchmarkGenerate8Speedup(b *testing.B) {
	for _, name := range []string{"stories260K", "llama-27M"} {
		b.Run(name, func(b *testing.B) {
			m, err := bindings.LoadModel(benchModel(b, name), bindings.ModelOptions{})
			require.NoError(b, err)
			defer m.Close()
			batched := newContext(b, m, BatchContextOptions(8, 256, runtime.NumCPU()))
			alone := newContext(b, m, BatchContextOptions(1, 256, runtime.NumCPU()))
			opts := GenerateOptions{MaxTokens: 32}
			var wall, cpu [2]time.Duration
			for b.Loop() {
				for k, c := range []*bindings.Context{batched, alone} {
					t0, c0 := time.Now(), processCPU()
					_, err := Generate(context.Background(), c, storyPrompts, opts)
					require.NoError(b, err)
					wall[k] += time.Since(t0)
					cpu[k] += processCPU() - c0
				}
			}
			b.ReportMetric(wall[1].Seconds()/wall[0].Seconds(), "x-wall")
			if cpu[0] > 0 {
				b.ReportMetric(cpu[1].Seconds()/cpu[0].Seconds(), "x-cpu")
			}
		})
	}
}

func TestGenerateChatTemplate(t *testing.T) {
	testenv.Stories(t)
	// stories260K with a chat template: the name of llama.cpp's built-in ChatML.
	path := filepath.Join(t.TempDir(), "stories-chatml.gguf")
	f, err := gguf.Open(storiesPath)
	require.NoError(t, err)
	b := f.Builder()
	b.Meta.Set("tokenizer.chat_template", gguf.ValueOf("chatml"))
	require.NoError(t, b.WriteFile(path))
	require.NoError(t, f.Close())
	m, err := bindings.LoadModel(path, bindings.ModelOptions{})
	require.NoError(t, err)
	defer m.Close()

	prompts := []string{"Once upon a time", "The dog ran to the park"}
	c := newContext(t, m, BatchContextOptions(2, 256, 1))
	got, err := Generate(context.Background(), c, prompts, GenerateOptions{MaxTokens: 20, Chat: true})
	require.NoError(t, err)
	// ChatML written out by hand: the text each prompt must have been turned into.
	var chatml []string
	for _, p := range prompts {
		chatml = append(chatml, "<|im_start|>user\n"+p+"<|im_end|>\n<|im_start|>assistant\n")
	}
	want := generateAlone(t, m, chatml, GenerateOptions{MaxTokens: 20})
	for i := range prompts {
		assert.Equal(t, want[i].Text, got[i].Text, "prompt %d", i)
		assert.Equal(t, want[i].PromptTokens, got[i].PromptTokens, "prompt %d", i)
	}
	plain, err := Generate(context.Background(), c, prompts, GenerateOptions{MaxTokens: 20})
	require.NoError(t, err)
	assert.NotEqual(t, plain[0].PromptTokens, got[0].PromptTokens, "the template changed the prompt")
}
