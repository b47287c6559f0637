package studio

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/internal/testmodel"
	"github.com/ecotune/ecotune/serve"
)

// TestMain keeps llama.cpp's load chatter out of the test output unless -v asks for it.
func TestMain(m *testing.M) {
	bindings.SetLogger(testenv.LibLogger(slog.LevelError))
	os.Exit(m.Run())
}

// adapterName is the seeded random adapter every fixture serves beside the base.
const adapterName = "tuned"

// studioServer is a real `ecotune serve` handler on stories260K (with a chat template and one
// adapter), the studio beside it, and optionally a fake jobs API, on a port of the test's.
type studioServer struct {
	*httptest.Server
	engine  *serve.Engine
	api     *serve.Server
	adapter string       // the adapter's file
	runs    string       // the studio's runs folder
	delay   atomic.Int64 // nanoseconds each streamed chat event is held back, so a browser sees tokens arrive
}

type serverOptions struct {
	apiKey string
	jobs   func(s *studioServer) http.Handler // mounted at /v1/files and /v1/fine_tuning/
}

func newStudioServer(t *testing.T, o serverOptions) *studioServer {
	t.Helper()
	dir := t.TempDir()
	base := filepath.Join(dir, "stories.gguf")
	testmodel.WithChatTemplate(t, testenv.Stories(t), base, testmodel.ChatMLTemplate)
	s := &studioServer{adapter: filepath.Join(dir, adapterName+".gguf"), runs: filepath.Join(dir, "runs")}
	testmodel.WriteLoRA(t, base, s.adapter, 4, 0.3, 7)
	require.NoError(t, os.Mkdir(s.runs, 0o755))
	e, err := serve.Open(base, serve.Options{Threads: 1, Parallel: 2, Ctx: 512})
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	_, err = e.LoadAdapter(adapterName, s.adapter, 1)
	require.NoError(t, err)
	s.engine = e
	s.api = serve.NewHandler(e, serve.HandlerOptions{APIKey: o.apiKey})

	mux := http.NewServeMux()
	mux.Handle("/", s.slowStreams(s.api))
	st := New(Options{RunsDir: s.runs, RequireKey: s.api.RequireKey, Fallback: s.api})
	mux.Handle("GET /{$}", st)
	mux.Handle("/studio/", st)
	if o.jobs != nil {
		j := s.api.RequireKey(o.jobs(s))
		mux.Handle("/v1/files", j)
		mux.Handle("/v1/files/", j)
		mux.Handle("/v1/fine_tuning/", j)
	}
	s.Server = httptest.NewServer(mux) // 127.0.0.1, a free port
	t.Cleanup(s.Close)
	return s
}

// slowStreams holds back each flush of a streamed response by s.delay.
func (s *studioServer) slowStreams(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := time.Duration(s.delay.Load()); d > 0 && r.URL.Path == "/v1/chat/completions" {
			w = &slowWriter{ResponseWriter: w, delay: d}
		}
		h.ServeHTTP(w, r)
	})
}

type slowWriter struct {
	http.ResponseWriter
	delay time.Duration
}

func (w *slowWriter) Flush() {
	w.ResponseWriter.(http.Flusher).Flush()
	time.Sleep(w.delay)
}

// greedy is the server's whole (not streamed) answer to one user message at temperature 0,
// with the sampling fields the page sends.
func (s *studioServer) greedy(t *testing.T, model, prompt, key string, maxTokens int) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": model, "messages": []map[string]string{{"role": "user", "content": prompt}},
		"temperature": 0, "top_p": 0.95, "top_k": 40, "max_tokens": maxTokens})
	req, err := http.NewRequest("POST", s.URL+"/v1/chat/completions", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	require.Equal(t, 200, res.StatusCode, "%s", raw)
	var out struct {
		Choices []struct {
			Message struct{ Content string }
		}
	}
	require.NoError(t, json.Unmarshal(raw, &out))
	require.Len(t, out.Choices, 1)
	return out.Choices[0].Message.Content
}

// browser starts headless chromium for the test and returns a tab's context, or skips the
// test in one line when chromium is not installed (fails under testenv.Strict).
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	var bin string
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		testenv.Missing(t, "chromium is not installed (make deps installs it, or apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height), chromedp.Flag("hide-scrollbars", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(ctx), "starting chromium")
	return ctx
}

// do runs chromedp actions with a deadline, failing the test on an error.
func do(t *testing.T, ctx context.Context, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	require.NoError(t, chromedp.Do(tctx, actions...))
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, "evaluating %s", expr)
	return v
}

// waitFor polls a JavaScript condition until it holds.
func waitFor(t *testing.T, ctx context.Context, timeout time.Duration, cond string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := chromedp.Run(tctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main').innerText`))
		t.Fatalf("waiting for %s: %v; the page says:\n%s", cond, err, page)
	}
}

// screenshot saves the viewport as name.png among the test's artifacts and, when
// ECOTUNE_UPDATE_DOCS=1, as docs/images/studio-name.png.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// Two frames let a scroll or a new node be painted before the capture.
	_, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	png, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	dir := t.ArtifactDir()
	if root := os.Getenv("ECOTUNE_ARTIFACTS"); root != "" {
		dir = filepath.Join(root, "studio", strings.ReplaceAll(t.Name(), "/", "_"))
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
	t.Logf("screenshot %s", filepath.Join(dir, name+".png"))
	if os.Getenv("ECOTUNE_UPDATE_DOCS") == "1" {
		require.NoError(t, os.WriteFile(filepath.Join(testenv.Root(t), "docs", "images", "studio-"+name+".png"), png, 0o644))
	}
}

// setValue sets a form field's value as a person typing would, so change handlers run.
func setValue(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`(() => { const e = document.querySelector(` + jsString(sel) + `); e.value = ` + jsString(value) + `;
		e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); })()`)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// pressEnter presses Enter as a keyboard does: one keyDown that carries the text, so that a
// handler that prevents its default also prevents the new line (chromedp's KeyEvent sends
// the text in a separate char event, which no keydown handler can cancel).
func pressEnter(mods ...kb.Modifier) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var m int64
		for _, x := range mods {
			m |= int64(x)
		}
		down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13, Text: "\r", UnmodifiedText: "\r", Modifiers: m}
		if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, down); err != nil {
			return err
		}
		up := down
		up.Type, up.Text, up.UnmodifiedText = input.DispatchKeyEventTypeKeyUp, "", ""
		_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, up)
		return err
	})
}
