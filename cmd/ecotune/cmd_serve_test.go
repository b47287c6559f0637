package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/internal/testmodel"
)

// The official clients, pinned.
const (
	openaiNPM = "openai@7.60.0"
	ollamaNPM = "ollama@0.6.4"
)

// serveFixture is stories260K with a chat template and two seeded random adapters.
type serveFixture struct {
	bin, base, alpha, beta string
}

func newServeFixture(t *testing.T) serveFixture {
	t.Helper()
	dir := t.TempDir()
	f := serveFixture{bin: filepath.Join(dir, "ecotune"), base: filepath.Join(dir, "stories.gguf"),
		alpha: filepath.Join(dir, "alpha.gguf"), beta: filepath.Join(dir, "beta.gguf")}
	testmodel.WithChatTemplate(t, testenv.Stories(t), f.base, testmodel.ChatMLTemplate)
	testmodel.WriteLoRA(t, f.base, f.alpha, 4, 0.3, 1)
	testmodel.WriteLoRA(t, f.base, f.beta, 4, 0.3, 2)
	out, err := exec.Command("go", "build", "-o", f.bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return f
}

// startServe runs `ecotune serve` on a port the OS picks and returns its base URL
// ("http://127.0.0.1:PORT"). At
// cleanup it sends SIGTERM and checks that the server exits 0.
func startServe(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--host", "127.0.0.1", "--port", "0"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	lines := bufio.NewScanner(stdout)
	addr := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if rest, ok := strings.CutPrefix(lines.Text(), "ecotune serve: listening on "); ok {
				addr <- strings.Fields(rest)[0]
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			assert.NoError(t, err, "ecotune serve exits 0 on SIGTERM; stderr: %s", stderr.String())
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Errorf("ecotune serve did not stop within 30 s of SIGTERM")
		}
	})
	select {
	case a := <-addr:
		return a
	case err := <-exited:
		t.Fatalf("ecotune serve exited at start: %v\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("ecotune serve did not start within 60 s\n%s", stderr.String())
	}
	return ""
}

// generated runs `ecotune generate` greedily and returns its output without the echoed
// prompt and the final newline.
func generated(t *testing.T, f serveFixture, prompt string, n int, extra ...string) string {
	t.Helper()
	args := append([]string{"generate", "-m", f.base, "-p", prompt, "-n", itoa(n), "--temp", "0", "--threads", "1"}, extra...)
	out, err := exec.Command(f.bin, args...).Output()
	require.NoError(t, err)
	s := strings.TrimSuffix(string(out), "\n")
	if !strings.Contains(strings.Join(extra, " "), "--chat") {
		s = strings.TrimPrefix(s, prompt)
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }

// clientScript calls the server through the official openai and ollama npm clients and
// prints what they returned as one JSON object.
const clientScript = `
import OpenAI from 'openai';
import { Ollama } from 'ollama';
const base = process.env.BASE_URL, key = process.env.API_KEY;
const Q = process.env.QUESTION, P = process.env.PROMPT, N = Number(process.env.N);
const out = {};
const openai = new OpenAI({ baseURL: base + '/v1', apiKey: key });
out.models = (await openai.models.list()).data.map(m => m.id);

const chatReq = { model: 'alpha', messages: [{ role: 'user', content: Q }], max_tokens: N, temperature: 0 };
const chat = await openai.chat.completions.create(chatReq);
out.chat = chat.choices[0].message.content;
out.chatFinish = chat.choices[0].finish_reason;
out.chatUsage = chat.usage;
let text = '', usage = null;
for await (const c of await openai.chat.completions.create({ ...chatReq, stream: true, stream_options: { include_usage: true } })) {
  if (c.choices.length) text += c.choices[0].delta.content ?? '';
  if (c.usage) usage = c.usage;
}
out.chatStream = text;
out.chatStreamUsage = usage;

const cmplReq = { model: 'stories', prompt: P, max_tokens: N, temperature: 0 };
out.completion = (await openai.completions.create(cmplReq)).choices[0].text;
text = '';
for await (const c of await openai.completions.create({ ...cmplReq, stream: true })) text += c.choices[0]?.text ?? '';
out.completionStream = text;

try {
  await new OpenAI({ baseURL: base + '/v1', apiKey: 'wrong', maxRetries: 0 }).models.list();
} catch (e) { out.wrongKeyStatus = e.status; }

const ollama = new Ollama({ host: base, headers: { Authorization: 'Bearer ' + key } });
out.tags = (await ollama.list()).models.map(m => m.name);
const options = { temperature: 0, repeat_penalty: 1, num_predict: N };
const gen = await ollama.generate({ model: 'beta', prompt: Q, stream: false, options });
out.generate = gen.response;
out.generateCount = gen.eval_count;
text = '';
let last = null;
for await (const part of await ollama.generate({ model: 'beta', prompt: Q, stream: true, options })) { text += part.response; last = part; }
out.generateStream = text;
out.generateStreamDone = last.done;
const messages = [{ role: 'user', content: Q }];
out.chatOllama = (await ollama.chat({ model: 'beta', messages, stream: false, options })).message.content;
text = '';
for await (const part of await ollama.chat({ model: 'beta', messages, stream: true, options })) text += part.message.content;
out.chatOllamaStream = text;
const show = await ollama.show({ model: 'beta' });
out.showFamily = show.details.family;
out.showParent = show.details.parent_model;
out.showTemplate = show.template;
out.psModels = (await ollama.ps()).models.map(m => m.name);
out.version = (await ollama.version()).version;
console.log(JSON.stringify(out));
`

// TestOfficialClients drives `ecotune serve` with the official openai and ollama npm
// clients, streamed and not, and checks every greedy answer against `ecotune generate`
// with the same model, adapter and prompt.
func TestOfficialClients(t *testing.T) {
	node, dir := testenv.NodePackages(t, openaiNPM, ollamaNPM)
	f := newServeFixture(t)
	url := startServe(t, f.bin, "-m", f.base, "--adapter", "alpha="+f.alpha, "--adapter", "beta="+f.beta, "--api-key", "sekrit", "--threads", "1")

	const question, prompt, n = "Tell me about the cat.", "Once upon a time", 24
	script := filepath.Join(t.TempDir(), "clients.mjs")
	require.NoError(t, os.WriteFile(script, []byte(clientScript), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(dir, "node_modules"), filepath.Join(filepath.Dir(script), "node_modules")))
	cmd := exec.Command(node, script)
	cmd.Env = append(os.Environ(), "BASE_URL="+url, "API_KEY=sekrit", "QUESTION="+question, "PROMPT="+prompt, "N="+itoa(n))
	raw, err := cmd.Output()
	var stderr []byte
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	require.NoError(t, err, "%s", stderr)
	var got struct {
		Models, Tags                                           []string
		Chat, ChatFinish, ChatStream                           string
		ChatUsage, ChatStreamUsage                             map[string]int
		Completion, CompletionStream                           string
		WrongKeyStatus                                         int
		Generate, GenerateStream, ChatOllama, ChatOllamaStream string
		GenerateCount                                          int
		GenerateStreamDone                                     bool
		ShowFamily, ShowParent, ShowTemplate, Version          string
		PsModels                                               []string
	}
	require.NoError(t, json.Unmarshal(raw, &got), "%s", raw)

	wantChat := generated(t, f, question, n, "--chat", "--lora", f.alpha)
	wantCompletion := generated(t, f, prompt, n)
	wantBeta := generated(t, f, question, n, "--chat", "--lora", f.beta)
	require.NotEqual(t, wantChat, wantBeta, "the adapters must change the output, or the test could not tell them apart")

	assert.Equal(t, []string{"stories", "alpha", "beta"}, got.Models)
	assert.Equal(t, wantChat, got.Chat)
	assert.Equal(t, wantChat, got.ChatStream)
	assert.Equal(t, "length", got.ChatFinish)
	assert.Equal(t, n, got.ChatUsage["completion_tokens"])
	assert.Equal(t, got.ChatUsage, got.ChatStreamUsage)
	assert.Equal(t, wantCompletion, got.Completion)
	assert.Equal(t, wantCompletion, got.CompletionStream)
	assert.Equal(t, 401, got.WrongKeyStatus)
	assert.Equal(t, []string{"stories", "alpha", "beta"}, got.Tags)
	assert.Equal(t, wantBeta, got.Generate)
	assert.Equal(t, n, got.GenerateCount)
	assert.Equal(t, wantBeta, got.GenerateStream)
	assert.True(t, got.GenerateStreamDone)
	assert.Equal(t, wantBeta, got.ChatOllama)
	assert.Equal(t, wantBeta, got.ChatOllamaStream)
	assert.Equal(t, "llama", got.ShowFamily)
	assert.Equal(t, "stories", got.ShowParent, "an adapter's parent is the base")
	assert.Equal(t, testmodel.ChatMLTemplate, got.ShowTemplate)
	assert.Equal(t, []string{"stories", "alpha", "beta"}, got.PsModels)
	assert.Equal(t, version, got.Version)
}
