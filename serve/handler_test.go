package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/internal/testmodel"
)

// startServer serves an engine on 127.0.0.1 at a port httptest picks.
func startServer(t testing.TB, e *Engine, opts HandlerOptions) (*httptest.Server, *Server) {
	t.Helper()
	h := NewHandler(e, opts)
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, h
}

// call sends a JSON request and returns the status and body.
func call(t testing.TB, ts *httptest.Server, method, path, body string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

func TestMalformedRequests(t *testing.T) {
	f := newFixture(t)
	e := openEngine(t, f, Options{Threads: 1, Parallel: 2, Ctx: 64})
	ts, _ := startServer(t, e, HandlerOptions{MaxBody: 4096})
	other := filepath.Join(t.TempDir(), "other.gguf")
	testmodel.WriteLoRA(t, testenv.Testdata(t, "llama-2-tiny-random.gguf"), other, 2, 0.1, 7)

	long := strings.Repeat("once upon a time ", 40)
	cases := []struct {
		name, method, path, body string
		status                   int
		want                     string // in the body
	}{
		{"not json", "POST", "/v1/completions", `{"prompt": `, 400, "not valid JSON"},
		{"two values", "POST", "/v1/completions", `{"prompt":"a"} {}`, 400, "more than one JSON value"},
		{"wrong type", "POST", "/v1/completions", `{"prompt":"a","max_tokens":"ten"}`, 400, `"param":"max_tokens"`},
		{"bad prompt type", "POST", "/v1/completions", `{"prompt":{"a":1}}`, 400, "prompt must be a string"},
		{"two prompts", "POST", "/v1/completions", `{"prompt":["a","b"]}`, 400, "exactly one string"},
		{"no prompt", "POST", "/v1/completions", `{"model":"stories"}`, 400, "prompt is required"},
		{"n", "POST", "/v1/completions", `{"prompt":"a","n":3}`, 400, `"param":"n"`},
		{"temperature", "POST", "/v1/completions", `{"prompt":"a","temperature":7}`, 400, "temperature must be between 0 and 2"},
		{"top_p", "POST", "/v1/completions", `{"prompt":"a","top_p":1.5}`, 400, `"param":"top_p"`},
		{"max_tokens 0", "POST", "/v1/completions", `{"prompt":"a","max_tokens":0}`, 400, `"param":"max_tokens"`},
		{"stop type", "POST", "/v1/completions", `{"prompt":"a","stop":3}`, 400, "stop must be a string or an array"},
		{"logprobs", "POST", "/v1/completions", `{"prompt":"a","logprobs":50}`, 400, `"param":"logprobs"`},
		{"suffix", "POST", "/v1/completions", `{"prompt":"a","suffix":"b"}`, 400, "suffix"},
		{"token range", "POST", "/v1/completions", `{"prompt":[1, 99999999]}`, 400, "outside the vocabulary"},
		{"too long", "POST", "/v1/completions", `{"prompt":"` + long + `"}`, 400, "context_length_exceeded"},
		{"unknown model", "POST", "/v1/completions", `{"model":"nope","prompt":"a"}`, 404, "model_not_found"},
		{"lora id", "POST", "/v1/completions", `{"prompt":"a","lora":[{"id":42}]}`, 404, "no adapter has id 42"},
		{"lora both", "POST", "/v1/completions", `{"prompt":"a","lora":[{"id":0,"name":"alpha"}]}`, 400, "not both"},
		{"lora none", "POST", "/v1/completions", `{"prompt":"a","lora":[{"scale":1}]}`, 400, "needs an id or a name"},
		{"lora name", "POST", "/v1/completions", `{"prompt":"a","lora":[{"name":"zeta"}]}`, 404, "zeta"},
		{"json schema", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"a"}],"response_format":{"type":"json_schema"}}`, 400, "response_format"},
		{"no messages", "POST", "/v1/chat/completions", `{"messages":[]}`, 400, "at least one message"},
		{"no role", "POST", "/v1/chat/completions", `{"messages":[{"content":"a"}]}`, 400, "messages[0].role"},
		{"image part", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, 400, "image_url"},
		{"top_logprobs", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"a"}],"logprobs":true,"top_logprobs":21}`, 400, "top_logprobs"},
		{"body limit", "POST", "/v1/completions", `{"prompt":"` + strings.Repeat("a", 5000) + `"}`, 413, "larger than the server's limit of 4096"},
		{"method", "GET", "/v1/completions", ``, 405, ""},
		{"ollama model", "POST", "/api/generate", `{"prompt":"a"}`, 400, "model is required"},
		{"ollama format", "POST", "/api/generate", `{"model":"stories","prompt":"a","format":"xml"}`, 400, "format must be"},
		{"ollama images", "POST", "/api/generate", `{"model":"stories","prompt":"a","images":["x"]}`, 400, "images"},
		{"ollama num_ctx", "POST", "/api/chat", `{"model":"stories","messages":[{"role":"user","content":"a"}],"options":{"num_ctx":100000}}`, 400, "num_ctx"},
		{"ollama tools", "POST", "/api/chat", `{"model":"stories","messages":[{"role":"user","content":"a"}],"tools":[{}]}`, 400, "tool calling"},
		{"ollama unknown", "POST", "/api/chat", `{"model":"nope","messages":[{"role":"user","content":"a"}]}`, 404, "does not exist"},
		{"show unknown", "POST", "/api/show", `{"model":"nope"}`, 404, "does not exist"},
		{"adapter no path", "POST", "/v1/adapters", `{"name":"x"}`, 400, "path"},
		{"adapter missing", "POST", "/v1/adapters", `{"name":"x","path":"/nonexistent.gguf"}`, 400, "no such file"},
		{"adapter bad name", "POST", "/v1/adapters", `{"name":"a/b","path":"` + f.adapters["beta"] + `"}`, 400, "not a usable adapter name"},
		{"adapter taken", "POST", "/v1/adapters", `{"name":"alpha","path":"` + f.adapters["beta"] + `"}`, 400, "already loaded"},
		{"adapter base name", "POST", "/v1/adapters", `{"name":"stories","path":"` + f.adapters["beta"] + `"}`, 400, "base model's name"},
		{"adapter other base", "POST", "/v1/adapters", `{"name":"x","path":"` + other + `"}`, 400, "shape"},
		{"adapter not gguf", "POST", "/v1/adapters", `{"name":"x","path":"` + filepath.Join(filepath.Dir(f.base), "alpha.gguf") + `x"}`, 400, "no such file"},
		{"unload unknown", "DELETE", "/v1/adapters/nope", ``, 404, "nope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body, _ := call(t, ts, c.method, c.path, c.body)
			assert.Equal(t, c.status, status, body)
			assert.Contains(t, body, c.want)
			if status >= 400 && c.method == "POST" {
				var v map[string]any
				require.NoError(t, json.Unmarshal([]byte(body), &v), "errors are JSON: %s", body)
				assert.Contains(t, v, "error")
			}
		})
	}
	// Nothing above left a request in a slot or an adapter loaded.
	assert.Equal(t, Stats{Slots: 2, Adapters: 3}, e.Stats())
}

func TestAPIKey(t *testing.T) {
	f := newFixture(t)
	e := openEngine(t, f, Options{Threads: 1, Parallel: 1, Ctx: 64})
	ts, _ := startServer(t, e, HandlerOptions{APIKey: "sekrit"})
	for _, path := range []string{"/v1/models", "/api/tags", "/metrics", "/v1/adapters"} {
		status, body, h := call(t, ts, "GET", path, "")
		assert.Equal(t, 401, status, path)
		assert.Contains(t, body, "invalid_api_key")
		assert.Equal(t, `Bearer realm="ecotune"`, h.Get("WWW-Authenticate"))
		status, _, _ = call(t, ts, "GET", path, "", "Authorization", "Bearer wrong")
		assert.Equal(t, 401, status, path)
		status, _, _ = call(t, ts, "GET", path, "", "Authorization", "Bearer sekrit")
		assert.Equal(t, 200, status, path)
	}
	status, _, _ := call(t, ts, "POST", "/v1/completions", `{"prompt":"a","max_tokens":1}`)
	assert.Equal(t, 401, status)
	status, _, _ = call(t, ts, "GET", "/health", "")
	assert.Equal(t, 200, status, "health needs no key")
}

// sseEvents reads a server-sent event stream into its data payloads.
func sseEvents(t testing.TB, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// TestStreamsMatchWholeResponses: streamed chat and completions carry the same text,
// finish reason and usage as the same request not streamed, with OpenAI's framing.
func TestStreamsMatchWholeResponses(t *testing.T) {
	f := newFixture(t)
	e := openEngine(t, f, Options{Threads: 1, Parallel: 2, Ctx: 256})
	ts, _ := startServer(t, e, HandlerOptions{})
	body := `{"model":"alpha","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Tell me a story."}],"max_tokens":30,"temperature":0%s}`
	status, whole, _ := call(t, ts, "POST", "/v1/chat/completions", fmt.Sprintf(body, ""))
	require.Equal(t, 200, status, whole)
	var w struct {
		Object  string
		Model   string
		Choices []struct {
			Message      struct{ Role, Content string }
			FinishReason string `json:"finish_reason"`
		}
		Usage usage
	}
	require.NoError(t, json.Unmarshal([]byte(whole), &w))
	assert.Equal(t, "chat.completion", w.Object)
	assert.Equal(t, "alpha", w.Model)
	assert.Equal(t, "assistant", w.Choices[0].Message.Role)
	assert.Equal(t, "length", w.Choices[0].FinishReason)
	assert.Equal(t, 30, w.Usage.CompletionTokens)

	status, streamed, _ := call(t, ts, "POST", "/v1/chat/completions", fmt.Sprintf(body, `,"stream":true,"stream_options":{"include_usage":true}`))
	require.Equal(t, 200, status)
	events := sseEvents(t, strings.NewReader(streamed))
	require.GreaterOrEqual(t, len(events), 4)
	assert.Equal(t, "[DONE]", events[len(events)-1])
	var text strings.Builder
	var finish string
	var u *usage
	for i, ev := range events[:len(events)-1] {
		var c struct {
			Object  string
			Choices []struct {
				Delta        struct{ Role, Content string }
				FinishReason *string `json:"finish_reason"`
			}
			Usage *usage
		}
		require.NoError(t, json.Unmarshal([]byte(ev), &c), ev)
		assert.Equal(t, "chat.completion.chunk", c.Object)
		if i == 0 {
			assert.Equal(t, "assistant", c.Choices[0].Delta.Role)
		}
		if c.Usage != nil {
			assert.Empty(t, c.Choices, "the usage chunk has no choices")
			u = c.Usage
			continue
		}
		text.WriteString(c.Choices[0].Delta.Content)
		if c.Choices[0].FinishReason != nil {
			finish = *c.Choices[0].FinishReason
		}
	}
	assert.Equal(t, w.Choices[0].Message.Content, text.String())
	assert.Equal(t, "length", finish)
	require.NotNil(t, u)
	assert.Equal(t, w.Usage, *u)

	// Ollama's stream ends with the counts.
	status, nd, _ := call(t, ts, "POST", "/api/chat", `{"model":"alpha","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Tell me a story."}],"options":{"temperature":0,"repeat_penalty":1,"num_predict":30}}`)
	require.Equal(t, 200, status)
	lines := strings.Split(strings.TrimSpace(nd), "\n")
	text.Reset()
	for i, l := range lines {
		var c struct {
			Message         struct{ Content string }
			Done            bool
			DoneReason      string `json:"done_reason"`
			EvalCount       int    `json:"eval_count"`
			PromptEvalCount int    `json:"prompt_eval_count"`
			EvalDuration    int64  `json:"eval_duration"`
		}
		require.NoError(t, json.Unmarshal([]byte(l), &c))
		text.WriteString(c.Message.Content)
		assert.Equal(t, i == len(lines)-1, c.Done)
		if c.Done {
			assert.Equal(t, "length", c.DoneReason)
			assert.Equal(t, 30, c.EvalCount)
			assert.Equal(t, w.Usage.PromptTokens, c.PromptEvalCount)
			assert.Positive(t, c.EvalDuration)
		}
	}
	assert.Equal(t, w.Choices[0].Message.Content, text.String())
}

// metric reads one series from /metrics.
func metric(t testing.TB, ts *httptest.Server, series string) float64 {
	t.Helper()
	_, body, _ := call(t, ts, "GET", "/metrics", "")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	require.NotNil(t, m, "no %s in /metrics", series)
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}

// TestQueueFullAndDisconnect: with the slot and the queue taken a request gets 429 with
// Retry-After; clients that go away free their slot and queue place.
func TestQueueFullAndDisconnect(t *testing.T) {
	f := newFixture(t)
	e := openEngine(t, f, Options{Threads: 1, Parallel: 1, Ctx: 2048, Queue: 1})
	ts, _ := startServer(t, e, HandlerOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	first := make(chan struct{})
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/completions",
				strings.NewReader(`{"prompt":"Once upon a time","max_tokens":2000,"temperature":1,"stream":true}`))
			resp, err := ts.Client().Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			if i == 0 {
				br := bufio.NewReader(resp.Body)
				br.ReadString('\n') // the first event: the request holds the slot
				close(first)
			}
			io.Copy(io.Discard, resp.Body)
		}()
		if i == 0 {
			<-first
		}
	}
	require.Eventually(t, func() bool { return e.Stats().Waiting == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, 1.0, metric(t, ts, "ecotune_slots_busy"))
	assert.Equal(t, 1.0, metric(t, ts, "ecotune_queue_depth"))
	status, body, h := call(t, ts, "POST", "/v1/completions", `{"prompt":"a","max_tokens":1}`)
	assert.Equal(t, 429, status, body)
	assert.Equal(t, "1", h.Get("Retry-After"))
	assert.Contains(t, body, "queue_full")

	cancel() // both clients disconnect
	wg.Wait()
	require.Eventually(t, func() bool {
		return metric(t, ts, "ecotune_slots_busy") == 0 && metric(t, ts, "ecotune_queue_depth") == 0
	}, 5*time.Second, 5*time.Millisecond)
	status, body, _ = call(t, ts, "POST", "/v1/completions", `{"prompt":"a","max_tokens":2}`)
	assert.Equal(t, 200, status, body)
	assert.Equal(t, 1.0, metric(t, ts, `ecotune_requests_total{code="429",route="POST /v1/completions"}`))
}

// TestAdaptersChangeWhileStreaming loads one adapter and unloads another over HTTP while
// requests stream with the one being unloaded: every stream completes with its expected
// text, the unload returns once they are done, and the new adapter serves at once.
func TestAdaptersChangeWhileStreaming(t *testing.T) {
	f := newFixture(t)
	e := openEngine(t, f, Options{Threads: 1, Parallel: 4, Ctx: 256})
	ts, _ := startServer(t, e, HandlerOptions{})
	req := `{"model":"alpha","prompt":"Once upon a time","max_tokens":50,"temperature":0}`
	status, ref, _ := call(t, ts, "POST", "/v1/completions", req)
	require.Equal(t, 200, status)
	want := textOf(t, ref)

	var wg sync.WaitGroup
	got := make([]string, 6)
	started := make(chan struct{}, len(got))
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := ts.Client().Post(ts.URL+"/v1/completions", "application/json",
				strings.NewReader(strings.Replace(req, `"temperature":0`, `"temperature":0,"stream":true`, 1)))
			if !assert.NoError(t, err) {
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			line, _ := br.ReadString('\n')
			started <- struct{}{}
			var sb strings.Builder
			for _, ev := range sseEvents(t, io.MultiReader(strings.NewReader(line), br)) {
				if ev == "[DONE]" {
					continue
				}
				var c struct{ Choices []struct{ Text string } }
				if assert.NoError(t, json.Unmarshal([]byte(ev), &c), ev) && len(c.Choices) > 0 {
					sb.WriteString(c.Choices[0].Text)
				}
			}
			got[i] = sb.String()
		}()
	}
	for range got {
		<-started
	}
	status, body, _ := call(t, ts, "POST", "/v1/adapters", fmt.Sprintf(`{"name":"delta","path":%q,"scale":0.5}`, f.adapters["beta"]))
	require.Equal(t, 200, status, body)
	status, body, _ = call(t, ts, "DELETE", "/v1/adapters/alpha", "")
	require.Equal(t, 200, status, body)
	wg.Wait()
	for i, g := range got {
		assert.Equal(t, want, g, "stream %d", i)
	}
	status, _, _ = call(t, ts, "POST", "/v1/completions", req)
	assert.Equal(t, 404, status, "alpha is gone")
	status, body, _ = call(t, ts, "POST", "/v1/completions", `{"model":"delta","prompt":"Once upon a time","max_tokens":20,"temperature":0}`)
	assert.Equal(t, 200, status, body)
	// delta is beta at scale 0.5, so it equals beta through the lora field at 0.5.
	status, viaLora, _ := call(t, ts, "POST", "/v1/completions", `{"prompt":"Once upon a time","max_tokens":20,"temperature":0,"lora":[{"name":"beta","scale":0.5}]}`)
	assert.Equal(t, 200, status)
	assert.Equal(t, textOf(t, body), textOf(t, viaLora))
	_, models, _ := call(t, ts, "GET", "/v1/models", "")
	assert.Contains(t, models, `"id":"delta"`)
	assert.NotContains(t, models, `"id":"alpha"`)
}

func textOf(t testing.TB, body string) string {
	t.Helper()
	var v struct{ Choices []struct{ Text string } }
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	require.Len(t, v.Choices, 1, body)
	return v.Choices[0].Text
}
