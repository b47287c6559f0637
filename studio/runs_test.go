package studio

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/trainer"
)

// writeRun makes a run folder as `ecotune train` and `ecotune eval -o RUN/eval` leave it:
// metrics.jsonl written with the trainer's own Record type, train_config.json, the adapter,
// and a report. steps train records, an evaluation every 5.
func writeRun(t *testing.T, dir, name string, steps int, finished bool) {
	t.Helper()
	run := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Join(run, "eval"), 0o755))
	f, err := os.Create(filepath.Join(run, "metrics.jsonl"))
	require.NoError(t, err)
	enc := json.NewEncoder(f)
	for s := 1; s <= steps; s++ {
		require.NoError(t, enc.Encode(trainer.Record{Kind: "train", Step: s, Loss: 3 / float64(s), LR: 2e-4, Tokens: 256 * s, TokensPerSec: 900, ElapsedSec: float64(s) / 4}))
		if s%5 == 0 {
			require.NoError(t, enc.Encode(trainer.Record{Kind: "eval", Step: s, Loss: 3.2 / float64(s), ElapsedSec: float64(s) / 4}))
		}
	}
	f.WriteString(`{"kind":"train","step":`) // a record being written: not read yet
	require.NoError(t, f.Close())
	cfg := map[string]any{"model": "/models/stories.gguf", "data": "data/climate", "config": trainer.Config{Steps: steps, LoRA: trainer.LoRAConfig{Rank: 8, Alpha: 16, Targets: []string{"attn_q", "attn_v"}}}}
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(run, "train_config.json"), raw, 0o644))
	if finished {
		require.NoError(t, os.WriteFile(filepath.Join(run, "adapter.gguf"), make([]byte, 4096), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(run, "eval", "report.html"), []byte("<!doctype html><title>report</title><h1>eval report of "+name+"</h1>"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(run, "eval", "report.json"), []byte(`{"model":"stories","systems":[{"name":"base","metrics":{"exact_match":10,"f1":20,"bleu":{"score":5},"rougeL":30}},{"name":"tuned","metrics":{"exact_match":40,"f1":55,"bleu":{"score":21},"rougeL":60},"loss":{"mean_nll":1.25}}],"examples":[]}`), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(run, "checkpoint-5.secret"), []byte("not served"), 0o644))
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

// TestRunsAPI lists run folders, reads one with its records and report, serves its report
// and refuses every path that leaves the run or names a file the studio does not serve.
func TestRunsAPI(t *testing.T) {
	dir := t.TempDir()
	writeRun(t, dir, "old", 10, true)
	writeRun(t, dir, "new", 7, false)
	require.NoError(t, os.Chtimes(filepath.Join(dir, "old", "metrics.jsonl"), time.Now().Add(-time.Hour), time.Now().Add(-time.Hour)))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "not-a-run"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("no"), 0o644))
	srv := httptest.NewServer(New(Options{RunsDir: dir}))
	defer srv.Close()

	code, body := get(t, srv.URL+"/studio/api/runs")
	require.Equal(t, 200, code, body)
	var list struct{ Data []Run }
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	require.Len(t, list.Data, 2, body)
	assert.Equal(t, "new", list.Data[0].Name, "newest first")
	old := list.Data[1]
	assert.Equal(t, "stories.gguf", old.Model)
	assert.Equal(t, 10, old.LastStep)
	assert.Equal(t, 10, old.Steps)
	assert.Equal(t, 8, old.Rank)
	assert.Equal(t, []string{"attn_q", "attn_v"}, old.Targets)
	assert.InDelta(t, 0.3, *old.TrainLoss, 1e-12)
	assert.InDelta(t, 0.32, *old.BestValidLoss, 1e-12)
	assert.Equal(t, "adapter.gguf", old.Adapter)
	require.Len(t, old.Reports, 1)
	assert.Equal(t, Report{Dir: "eval", HTML: "eval/report.html", JSON: "eval/report.json", Systems: old.Reports[0].Systems}, old.Reports[0])
	assert.Contains(t, string(old.Reports[0].Systems), `"mean_nll":1.25`)
	assert.Empty(t, list.Data[0].Adapter)
	assert.Empty(t, list.Data[0].Problem)

	code, body = get(t, srv.URL+"/studio/api/runs/new")
	require.Equal(t, 200, code, body)
	var detail RunDetail
	require.NoError(t, json.Unmarshal([]byte(body), &detail))
	assert.Len(t, detail.Records, 8, "7 steps and one evaluation; the unfinished line waits")
	assert.Equal(t, "eval", detail.Records[5].Kind)
	assert.Contains(t, string(detail.Config), `"data":"data/climate"`)

	code, body = get(t, srv.URL+"/studio/api/runs/old/files/eval/report.html")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, "eval report of old")
	for _, bad := range []string{"/studio/api/runs/nope", "/studio/api/runs/old/files/checkpoint-5.secret", "/studio/api/runs/old/files/adapter.gguf",
		"/studio/api/runs/old/files/..%2F..%2Fsecret.txt", "/studio/api/runs/..%2Fold/files/metrics.jsonl", "/studio/api/runs/old/files/a/b/report.html",
		"/studio/api/runs/old/files/../secret.txt", "/studio/api/nothing"} {
		code, body := get(t, srv.URL+bad)
		assert.Equal(t, 404, code, "%s: %s", bad, body)
		assert.NotContains(t, body, "no\n")
	}

	// The page and its assets; a non-browser probe of / goes to Fallback.
	code, body = get(t, srv.URL+"/studio/js/chat.js")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, "export class Chat")
	fallback := httptest.NewServer(New(Options{Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ecotune is running\n") })}))
	defer fallback.Close()
	code, body = get(t, fallback.URL+"/")
	assert.Equal(t, "ecotune is running\n", body)
	req, _ := http.NewRequest("GET", fallback.URL+"/", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.True(t, strings.HasPrefix(string(page), "<!doctype html>"), "a browser gets the page")

	// No runs folder: an empty list, not an error.
	empty := httptest.NewServer(New(Options{}))
	defer empty.Close()
	code, body = get(t, empty.URL+"/studio/api/runs")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, `"data":[]`)
}

// TestStudioRuns shows the Runs tab: the run folders, a run's curves with every record
// drawn, its report's metric table, and the report opened from its link.
func TestStudioRuns(t *testing.T) {
	s := newStudioServer(t, serverOptions{})
	writeRun(t, s.runs, "climate-r8", 40, true)
	writeRun(t, s.runs, "climate-r16", 12, false)
	ctx := browser(t, 1280, 900)
	do(t, ctx, 30*time.Second, chromedp.Navigate(s.URL+"/#runs"), chromedp.WaitVisible(chromedp.CSS("body.ready")))
	waitFor(t, ctx, 10*time.Second, `document.querySelectorAll('#runs-body tr').length === 2`)
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`#runs-body tr[data-run="climate-r8"]`)))
	waitFor(t, ctx, 10*time.Second, `document.getElementById('run-title').textContent === 'climate-r8' && document.querySelector('#run-loss polyline.train') !== null`)
	assert.Equal(t, 40, eval[int](t, ctx, `+document.querySelector('#run-loss polyline.train').dataset.n`))
	assert.Equal(t, 8, eval[int](t, ctx, `+document.querySelector('#run-loss polyline.valid').dataset.n`))
	assert.Equal(t, []string{"base", "tuned"}, eval[[]string](t, ctx, `[...document.querySelectorAll('.report-table tbody tr td:first-child')].map(e => e.textContent)`))
	assert.Equal(t, "21", eval[string](t, ctx, `document.querySelector('.report-table tbody tr:nth-child(2) td:nth-child(4)').textContent`), "BLEU of the tuned system")
	screenshot(t, ctx, "runs")
	href := eval[string](t, ctx, `document.querySelector('#run-reports a.report-link').href`)
	code, body := get(t, href)
	assert.Equal(t, 200, code)
	assert.Contains(t, body, "eval report of climate-r8")
}
