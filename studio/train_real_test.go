package studio

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/jobs"
)

// engineSink serves finished jobs' adapters on the test's engine, as ecotune serve does.
type engineSink struct{ s *studioServer }

func (e engineSink) AddAdapter(name, path string) error {
	_, err := e.s.engine.LoadAdapter(name, path, 1)
	return err
}

// TestStudioTrainingRealJobs starts a job from the page on the real fine-tuning service
// (jobs running ecotune prepare and train as child processes): the page's loss curve
// grows while the job runs, the job succeeds, and "Chat with the result" answers with
// the adapter it made.
func TestStudioTrainingRealJobs(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ecotune")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/ecotune").CombinedOutput()
	require.NoError(t, err, "%s", out)
	state := t.TempDir()
	var sink engineSink
	s := newStudioServer(t, serverOptions{jobs: func(s *studioServer) http.Handler {
		sink.s = s
		m, err := jobs.Open(jobs.Options{DataDir: state, RunsDir: s.runs, Base: jobs.Base{Name: "stories", Path: s.engine.Model().Path()},
			Runner: jobs.CommandRunner{Path: bin}, Sink: sink, Threads: 1})
		require.NoError(t, err)
		t.Cleanup(func() { m.Close() })
		return m.Handler()
	}})
	data := filepath.Join(testenv.Root(t), "data", "environment", "chats.jsonl")
	ctx := browser(t, 1280, 900)
	do(t, ctx, 30*time.Second, chromedp.Navigate(s.URL+"/#train"), chromedp.WaitVisible(chromedp.CSS("body.ready")))
	do(t, ctx, 10*time.Second, chromedp.SetUploadFiles(chromedp.CSS("#upload-file"), []string{data}), chromedp.Click(chromedp.CSS("#upload")))
	waitFor(t, ctx, 60*time.Second, `document.querySelector('#preview .seg.trained') !== null`)
	do(t, ctx, 10*time.Second, setValue("#ft-suffix", "env"), setValue("#ft-steps", "120"), setValue("#ft-seqlen", "128"),
		chromedp.Click(chromedp.CSS("#start-job")))

	// Sample the curve while the job runs: it must be seen at several sizes, never shrinking.
	points := `+(document.querySelector('#loss-chart polyline.train')?.dataset.n || 0)`
	status := `document.getElementById('job-status').textContent`
	var seen []int
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		st := eval[string](t, ctx, status)
		if st == "succeeded" || st == "failed" || st == "cancelled" {
			break
		}
		if n := eval[int](t, ctx, points); st == "running" && n > 0 && (len(seen) == 0 || n != seen[len(seen)-1]) {
			if len(seen) > 0 {
				require.Greater(t, n, seen[len(seen)-1], "the curve shrank")
			}
			seen = append(seen, n)
			if len(seen) == 3 {
				screenshot(t, ctx, "train-real")
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, "succeeded", eval[string](t, ctx, status), "events: %s", eval[string](t, ctx, `document.getElementById('events').textContent`))
	assert.GreaterOrEqual(t, len(seen), 3, "the curve grew while the job ran (sizes seen: %v)", seen)
	waitFor(t, ctx, 10*time.Second, points+` === 120`)

	// The result is served: the page's answer equals the adapter's greedy answer.
	models := s.engine.Adapters()
	require.Len(t, models, 2)
	ft := models[1].Name
	want := s.greedy(t, ft, chatPrompt, "", chatTokens)
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS("#chat-result"), chromedp.NodeVisible), chromedp.WaitVisible(chromedp.CSS("#chat")))
	waitFor(t, ctx, 10*time.Second, `document.getElementById('model').value === `+jsString(ft))
	do(t, ctx, 10*time.Second, chatSettings(chatTokens), chromedp.SendKeys(chromedp.CSS("#prompt"), chatPrompt), pressEnter())
	waitFor(t, ctx, 30*time.Second, `document.querySelector('#log-a .msg.assistant.done') !== null`)
	assert.Equal(t, want, eval[string](t, ctx, lastAnswer("log-a")))
	// The job's run folder is in the runs folder, so the Runs tab lists it.
	entries, err := os.ReadDir(s.runs)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	_, err = os.Stat(filepath.Join(s.runs, entries[0].Name(), "adapter.gguf"))
	assert.NoError(t, err)
}
