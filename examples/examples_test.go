// Package examples_test builds the example programs and checks what they print against
// generations computed here on another path: bindings.Generate on a fresh context, which
// is what `ecotune generate` runs. Greedy decoding makes both exact.
package examples_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/internal/testmodel"
)

// fixture is stories260K with a ChatML template and two seeded random adapters, which
// change its greedy output visibly.
type fixture struct {
	dir, base string
	adapters  map[string]string // name → path
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	f := fixture{dir: dir, base: filepath.Join(dir, "stories.gguf"), adapters: map[string]string{}}
	testmodel.WithChatTemplate(t, testenv.Stories(t), f.base, testmodel.ChatMLTemplate)
	for i, name := range []string{"alpha", "beta"} {
		f.adapters[name] = filepath.Join(dir, name+".gguf")
		testmodel.WriteLoRA(t, f.base, f.adapters[name], 4, 0.3, uint64(i+1))
	}
	return f
}

// TestExamples builds both programs once and runs them as a user would.
func TestExamples(t *testing.T) {
	f := newFixture(t)
	bin := buildExamples(t)
	ref := newRefModel(t, f.base, f.adapters)
	t.Run("chat", func(t *testing.T) { testChat(t, f, ref, filepath.Join(bin, "chat")) })
	t.Run("chat-interrupt", func(t *testing.T) { testChatInterrupt(t, f, filepath.Join(bin, "chat")) })
	t.Run("batch", func(t *testing.T) { testBatch(t, f, ref, filepath.Join(bin, "batch")) })
	t.Run("batch-bad-input", func(t *testing.T) { testBatchBadInput(t, f, filepath.Join(bin, "batch")) })
}

// testChat feeds two user turns to the chat REPL with an adapter and expects exactly the
// two replies that the conversation, formatted independently, generates.
func testChat(t *testing.T, f fixture, ref *refModel, chat string) {
	const maxTokens = 24
	user1, user2 := "Tell me about a little dog.", "What did the dog find?"
	u1 := bindings.ChatMessage{Role: "user", Content: user1}
	u2 := bindings.ChatMessage{Role: "user", Content: user2}
	reply1, _ := ref.generate(t, "alpha", chatPrompt(t, u1), maxTokens)
	reply2, _ := ref.generate(t, "alpha", chatPrompt(t, u1, bindings.ChatMessage{Role: "assistant", Content: reply1}, u2), maxTokens)

	// The check could not tell a REPL that drops the adapter or the history from a good one
	// unless both change the reply.
	base1, _ := ref.generate(t, "", chatPrompt(t, u1), maxTokens)
	require.NotEqual(t, reply1, base1, "the adapter does not change the reply")
	alone2, _ := ref.generate(t, "alpha", chatPrompt(t, u2), maxTokens)
	require.NotEqual(t, reply2, alone2, "the history does not change the second reply")

	out := runProgram(t, chat, user1+"\n"+user2+"\n",
		"-m", f.base, "--adapter", "alpha="+f.adapters["alpha"], "--max-tokens", fmt.Sprint(maxTokens), "--ctx", "512", "--threads", "1")
	require.Equal(t, 0, out.code, "stderr:\n%s", out.stderr)
	assert.Equal(t, reply1+"\n"+reply2+"\n", out.stdout)
	assert.Contains(t, out.stderr, "alpha> ", "the prompt names the adapter that answers")
}

// testChatInterrupt sends Ctrl-C's signal while a long reply streams: the reply stops, and
// the REPL answers the next line and exits 0 at the end of input.
func testChatInterrupt(t *testing.T, f fixture, chat string) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chat, "-m", f.base, "--max-tokens", "400", "--ctx", "2048", "--threads", "1")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())

	_, err = io.WriteString(stdin, "Tell me a long story.\n")
	require.NoError(t, err)
	out := bufio.NewReader(stdout)
	_, err = out.ReadByte() // the reply has begun
	require.NoError(t, err)
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	_, err = io.WriteString(stdin, "/reset\nAnd now?\n")
	require.NoError(t, err)
	require.NoError(t, stdin.Close())
	rest, err := io.ReadAll(out)
	require.NoError(t, err)
	require.NoError(t, cmd.Wait(), "stderr:\n%s", stderr.String())

	assert.Equal(t, 1, strings.Count(stderr.String(), "[stopped]"), "stderr:\n%s", stderr.String())
	// A prompt before each of the four reads: the first line, /reset, the last line, end of input.
	assert.Equal(t, 4, strings.Count(stderr.String(), "stories> "), "stderr:\n%s", stderr.String())
	first, second, ok := strings.Cut(string(rest), "\n")
	require.True(t, ok)
	assert.Less(t, len(first), len(second), "the stopped reply is cut short; the next one runs its course")
}

// batchLine is an input line of the batch test; Adapter "" and MaxTokens 0 are left out.
type batchLine struct {
	ID        any    `json:"id"`
	Prompt    string `json:"prompt"`
	Adapter   string `json:"adapter,omitempty"`
	MaxTokens int    `json:"max_tokens,omitempty"`
}

type batchResult struct {
	ID               any    `json:"id"`
	Text             string `json:"text"`
	FinishReason     string `json:"finish_reason"`
	PromptTokens     int    `json:"prompt_tokens"`
	CompletionTokens int    `json:"completion_tokens"`
}

// testBatch runs ten prompts over the base and two adapters, more than the engine has
// slots, and expects each result to be that prompt's single-request greedy output, in
// input order.
func testBatch(t *testing.T, f fixture, ref *refModel, batch string) {
	const defaultMax = 16
	stories := []string{
		"Once upon a time, there was a little", "The cat sat on the", "Lily and Ben went to the park. They",
		"One day, a big dog", "Tom had a red ball.",
	}
	adapters := []string{"", "alpha", "beta"}
	var lines []batchLine
	for i := range 10 {
		l := batchLine{Prompt: stories[i%len(stories)], Adapter: adapters[i%len(adapters)]}
		if i%2 == 0 {
			l.ID = fmt.Sprintf("q%d", i)
		} else {
			l.ID = float64(i) // as encoding/json reads numbers back
		}
		if i%4 == 1 {
			l.MaxTokens = 8 + i
		}
		lines = append(lines, l)
	}
	in := filepath.Join(t.TempDir(), "prompts.jsonl")
	writeJSONL(t, in, lines, 5) // a blank line among them must be skipped

	want := make([]batchResult, len(lines))
	for i, l := range lines {
		limit := cmp.Or(l.MaxTokens, defaultMax)
		text, n := ref.generate(t, l.Adapter, l.Prompt, limit)
		promptTokens, err := ref.m.PromptTokens(l.Prompt, true)
		require.NoError(t, err)
		finish := "stop"
		if n == limit {
			finish = "length"
		}
		want[i] = batchResult{ID: l.ID, Text: text, FinishReason: finish, PromptTokens: len(promptTokens), CompletionTokens: n}
	}
	// Lines 0, 10 and 5 would be the same prompt under the base, alpha and beta; unless those
	// differ, the check could not tell a program that ignores "adapter".
	alpha, _ := ref.generate(t, "alpha", stories[0], defaultMax)
	beta, _ := ref.generate(t, "beta", stories[0], defaultMax)
	require.NotEqual(t, want[0].Text, alpha)
	require.NotEqual(t, want[0].Text, beta)
	require.NotEqual(t, alpha, beta)

	outDir := t.TempDir()
	outFile := filepath.Join(outDir, "results.jsonl")
	out := runProgram(t, batch, "", "-m", f.base, "--adapter", "alpha="+f.adapters["alpha"], "--adapter", "beta="+f.adapters["beta"],
		"--max-tokens", fmt.Sprint(defaultMax), "--parallel", "3", "--jobs", "6", "--ctx", "256", "--threads", "1", "-o", outFile, in)
	require.Equal(t, 0, out.code, "stderr:\n%s", out.stderr)
	assert.Empty(t, out.stdout, "with -o nothing goes to stdout")
	assert.Equal(t, want, readResults(t, outFile))
	assert.Equal(t, []string{"results.jsonl"}, dirNames(t, outDir), "the temporary file was renamed, not left beside")

	// Without -o the same results go to stdout.
	out = runProgram(t, batch, "", "-m", f.base, "--adapter", "alpha="+f.adapters["alpha"], "--adapter", "beta="+f.adapters["beta"],
		"--max-tokens", fmt.Sprint(defaultMax), "--ctx", "256", "--threads", "1", in)
	require.Equal(t, 0, out.code, "stderr:\n%s", out.stderr)
	stdoutFile := filepath.Join(t.TempDir(), "stdout.jsonl")
	require.NoError(t, os.WriteFile(stdoutFile, []byte(out.stdout), 0o644))
	assert.Equal(t, want, readResults(t, stdoutFile))
}

// testBatchBadInput puts one bad line third among good ones and expects one line on
// stderr naming the file and line, exit status 1, and no output file.
func testBatchBadInput(t *testing.T, f fixture, batch string) {
	good := `{"id": 1, "prompt": "Once upon a time"}` + "\n" + `{"id": 2, "prompt": "The cat", "adapter": "alpha"}` + "\n"
	for _, tc := range []struct{ name, line, msg string }{
		{"syntax", `{"id": 3, "prompt": "A dog"`, "the JSON value ends before it is complete"},
		{"no-id", `{"prompt": "A dog"}`, `"id" is missing`},
		{"no-prompt", `{"id": 3}`, `"prompt" is missing`},
		{"prompt-type", `{"id": 3, "prompt": 42}`, `"prompt" must be string, not number`},
		{"unknown-field", `{"id": 3, "prompt": "A dog", "max_token": 5}`, `unknown field "max_token"`},
		{"negative-max", `{"id": 3, "prompt": "A dog", "max_tokens": -2}`, `"max_tokens" is -2`},
		{"unknown-adapter", `{"id": 3, "prompt": "A dog", "adapter": "gamma"}`, `"adapter" "gamma" was not given with --adapter`},
		{"two-values", `{"id": 3, "prompt": "A dog"} {"id": 4}`, "more than one JSON value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.jsonl")
			require.NoError(t, os.WriteFile(in, []byte(good+tc.line+"\n"+`{"id": 4, "prompt": "Tom"}`+"\n"), 0o644))
			out := runProgram(t, batch, "", "-m", f.base, "--adapter", "alpha="+f.adapters["alpha"], "-o", filepath.Join(dir, "out.jsonl"), in)
			assert.Equal(t, 1, out.code)
			assert.Empty(t, out.stdout)
			assert.Equal(t, in+":3: ", out.stderr[:min(len(in)+4, len(out.stderr))], "stderr: %q", out.stderr)
			assert.Contains(t, out.stderr, tc.msg)
			assert.Equal(t, 1, strings.Count(out.stderr, "\n"), "one line: %q", out.stderr)
			assert.Equal(t, []string{"in.jsonl"}, dirNames(t, dir), "no output file, temporary or final")
		})
	}

	// A prompt that cannot fit the context is found only by the engine's tokenizer, while
	// the others run; it still names its line and leaves no output.
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	long := `{"id": 3, "prompt": "` + strings.Repeat("the cat sat on the mat ", 20) + `"}`
	require.NoError(t, os.WriteFile(in, []byte(good+long+"\n"), 0o644))
	out := runProgram(t, batch, "", "-m", f.base, "--adapter", "alpha="+f.adapters["alpha"], "--ctx", "32", "--max-tokens", "4", "-o", filepath.Join(dir, "out.jsonl"), in)
	assert.Equal(t, 1, out.code)
	assert.True(t, strings.HasPrefix(out.stderr, in+":3: the prompt has "), "stderr: %q", out.stderr)
	assert.Equal(t, []string{"in.jsonl"}, dirNames(t, dir))
}

// writeJSONL writes lines as JSONL with an empty line before index blankAt.
func writeJSONL(t *testing.T, path string, lines []batchLine, blankAt int) {
	t.Helper()
	var sb strings.Builder
	for i, l := range lines {
		if i == blankAt {
			sb.WriteString("\n")
		}
		b, err := json.Marshal(l)
		require.NoError(t, err)
		sb.Write(b)
		sb.WriteString("\n")
	}
	require.NoError(t, os.WriteFile(path, []byte(sb.String()), 0o644))
}

func readResults(t *testing.T, path string) []batchResult {
	t.Helper()
	fh, err := os.Open(path)
	require.NoError(t, err)
	defer fh.Close()
	var got []batchResult
	s := bufio.NewScanner(fh)
	for s.Scan() {
		var r batchResult
		require.NoError(t, json.Unmarshal(s.Bytes(), &r), "line %q", s.Text())
		got = append(got, r)
	}
	require.NoError(t, s.Err())
	return got
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}
