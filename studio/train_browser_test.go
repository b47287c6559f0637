package studio

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const dataset = `{"messages":[{"role":"system","content":"You answer about the climate."},{"role":"user","content":"What is albedo?"},{"role":"assistant","content":"The share of sunlight a surface reflects."}]}
{"messages":[{"role":"user","content":"What is a carbon sink?"},{"role":"assistant","content":"Anything that takes in more carbon than it gives off, such as a forest."}]}
{"messages":[{"role":"user","content":"Why does sea ice matter?"},{"role":"assistant","content":"It reflects sunlight; open water absorbs it."}]}
`

// TestStudioTraining uploads a dataset from the page, previews it with the trained tokens
// marked, starts a job and watches its loss curve grow while it runs, then chats with the
// result; a second job is cancelled from the page. The jobs API is fakeJobs (scripted
// events) until the jobs package lands; the chat with the result runs on the real server.
func TestStudioTraining(t *testing.T) {
	var jobs *fakeJobs
	s := newStudioServer(t, serverOptions{jobs: func(s *studioServer) http.Handler {
		jobs = newFakeJobs(t.Context(), s.engine, s.adapter, 100*time.Millisecond)
		jobs.steps = make(chan struct{})
		return jobs.handler()
	}})
	wantTuned := s.greedy(t, adapterName, chatPrompt, "", chatTokens)
	data := filepath.Join(t.TempDir(), "climate.jsonl")
	require.NoError(t, os.WriteFile(data, []byte(dataset), 0o644))
	ctx := browser(t, 1280, 900)

	do(t, ctx, 30*time.Second, chromedp.Navigate(s.URL+"/#train"), chromedp.WaitVisible(chromedp.CSS("body.ready")))
	waitFor(t, ctx, 10*time.Second, `document.getElementById('train-file').options.length > 0`)
	assert.Equal(t, "stories", eval[string](t, ctx, `document.getElementById('ft-model').value`))
	do(t, ctx, 10*time.Second, chromedp.SetUploadFiles(chromedp.CSS("#upload-file"), []string{data}), chromedp.Click(chromedp.CSS("#upload")))
	waitFor(t, ctx, 10*time.Second, `document.getElementById('train-file').value === 'file-1' && document.querySelector('#preview .seg.trained') !== null`)
	assert.Equal(t, 3, eval[int](t, ctx, `document.querySelectorAll('#preview .example').length`))
	trained := eval[[]string](t, ctx, `[...document.querySelectorAll('#preview .example:first-of-type .seg.trained')].map(e => e.textContent)`)
	assert.Equal(t, []string{"The share of sunlight a surface reflects.", "<|im_end|>\n"}, trained)
	assert.Contains(t, eval[string](t, ctx, `document.querySelector('#preview .example').textContent`), "<|im_start|>user\nWhat is albedo?")

	const steps = 16
	do(t, ctx, 10*time.Second, setValue("#ft-suffix", "demo"), setValue("#ft-steps", "16"), chromedp.Click(chromedp.CSS("#start-job")))
	waitFor(t, ctx, 10*time.Second, `document.getElementById('job-status').textContent === 'running'`)
	// The job takes a step each time the test lets it: after each, the curve must show
	// one more point while the job is still running.
	for k := 1; k <= steps; k++ {
		jobs.steps <- struct{}{}
		cond := fmt.Sprintf(`+(document.querySelector('#loss-chart polyline.train')?.dataset.n || 0) === %d`, k)
		if k < steps {
			cond += ` && document.getElementById('job-status').textContent === 'running'`
		}
		waitFor(t, ctx, 10*time.Second, cond)
		if k == steps/2 {
			eval[bool](t, ctx, `(document.querySelector('main').scrollTop = 0, true)`)
			screenshot(t, ctx, "train")
		}
	}
	waitFor(t, ctx, 30*time.Second, `document.getElementById('job-status').textContent === 'succeeded'`)
	assert.Equal(t, 4, eval[int](t, ctx, `+document.querySelector('#loss-chart polyline.valid').dataset.n`), "validation points")
	assert.Equal(t, steps, eval[int](t, ctx, `+document.querySelector('#lr-chart polyline.lr').dataset.n`), "learning-rate points")
	assert.Equal(t, "16 / 16", eval[string](t, ctx, `document.getElementById('stat-step').textContent`))
	events := eval[string](t, ctx, `document.getElementById('events').textContent`)
	assert.Contains(t, events, "New fine-tuned model created: ft:stories:demo:ftjob-1")
	assert.Less(t, strings.Index(events, "Validating"), strings.Index(events, "successfully completed"), "events out of order")
	assert.True(t, eval[bool](t, ctx, `document.getElementById('cancel-job').hidden`), "Cancel offered for a finished job")
	eval[bool](t, ctx, `(document.querySelector('main').scrollTop = 0, true)`)
	screenshot(t, ctx, "train-done")

	req := jobs.request(0)
	require.NotNil(t, req)
	assert.Equal(t, "stories", req["model"])
	assert.Equal(t, "file-1", req["training_file"])
	assert.Equal(t, "demo", req["suffix"])
	assert.Equal(t, 42.0, req["seed"])
	assert.Equal(t, map[string]any{"n_epochs": 3.0, "batch_size": 4.0, "learning_rate_multiplier": 1.0}, req["hyperparameters"])
	assert.Equal(t, map[string]any{"r": 8.0, "alpha": 16.0, "targets": []any{"attn_q", "attn_k", "attn_v", "attn_output"}, "seq_len": 256.0, "lr": 0.0002, "steps": 16.0}, req["ecotune"])

	// Chat with the result: the Chat tab, the new model picked, and its answer.
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS("#chat-result"), chromedp.NodeVisible), chromedp.WaitVisible(chromedp.CSS("#chat")))
	waitFor(t, ctx, 10*time.Second, `document.getElementById('model').value === 'ft:stories:demo:ftjob-1'`)
	do(t, ctx, 10*time.Second, chatSettings(chatTokens), chromedp.SendKeys(chromedp.CSS("#prompt"), chatPrompt), pressEnter())
	waitFor(t, ctx, 30*time.Second, `document.querySelector('#log-a .msg.assistant.done') !== null`)
	assert.Equal(t, wantTuned, eval[string](t, ctx, lastAnswer("log-a")))

	// A second job, cancelled while it runs.
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS("#tab-train")), setValue("#ft-steps", "500"), chromedp.Click(chromedp.CSS("#start-job")))
	waitFor(t, ctx, 10*time.Second, `document.getElementById('job-id').textContent === 'ftjob-2'`)
	for range 2 {
		jobs.steps <- struct{}{}
	}
	waitFor(t, ctx, 10*time.Second, `document.getElementById('job-status').textContent === 'running' && +(document.querySelector('#loss-chart polyline.train')?.dataset.n || 0) === 2`)
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS("#cancel-job")))
	waitFor(t, ctx, 10*time.Second, `document.getElementById('job-status').textContent === 'cancelled' && document.getElementById('cancel-job').hidden`)
	select {
	case jobs.steps <- struct{}{}:
		t.Error("the cancelled job still takes steps")
	case <-time.After(300 * time.Millisecond):
	}
	assert.Equal(t, 2, eval[int](t, ctx, `+document.querySelector('#loss-chart polyline.train').dataset.n`), "the curve changed after the cancel")
	assert.True(t, eval[bool](t, ctx, `document.getElementById('chat-result').hidden`))
	waitFor(t, ctx, 10*time.Second, `document.querySelectorAll('#jobs-body tr').length === 2`)
}
