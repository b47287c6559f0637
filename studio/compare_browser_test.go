package studio

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStudioSideBySide sends one prompt to the base and the adapter at once and checks that
// both answers stream next to each other, each equal to its model's whole greedy answer,
// and different from each other.
func TestStudioSideBySide(t *testing.T) {
	s := newStudioServer(t, serverOptions{})
	wantBase := s.greedy(t, "stories", chatPrompt, "", chatTokens)
	wantTuned := s.greedy(t, adapterName, chatPrompt, "", chatTokens)
	require.NotEqual(t, wantBase, wantTuned, "the adapter must change the answer, or the test could not tell the columns apart")
	ctx := browser(t, 1200, 800)
	s.delay.Store(int64(10 * time.Millisecond))

	do(t, ctx, 30*time.Second, chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.CSS("body.ready")),
		chromedp.Click(chromedp.CSS("#sbs")), chromedp.WaitVisible(chromedp.CSS("#col-b")))
	assert.Equal(t, adapterName, eval[string](t, ctx, `document.getElementById('model').value`), "side by side should pick the adapter")
	assert.Equal(t, "stories", eval[string](t, ctx, `document.getElementById('head-a').textContent`))
	assert.Equal(t, adapterName, eval[string](t, ctx, `document.getElementById('head-b').textContent`))
	// Both columns must be streaming at the same moment, not one after the other.
	do(t, ctx, 10*time.Second, chatSettings(chatTokens), chromedp.Evaluate[chromedp.Void](`(() => {
		window.__both = false;
		new MutationObserver(() => {
			if (document.querySelectorAll('.msg.assistant.streaming').length === 2) window.__both = true;
		}).observe(document.getElementById('columns'), {subtree: true, childList: true, characterData: true, attributes: true});
	})()`), chromedp.SendKeys(chromedp.CSS("#prompt"), chatPrompt), pressEnter())
	waitFor(t, ctx, 30*time.Second, `document.querySelectorAll('.msg.assistant.done').length === 2`)
	assert.True(t, eval[bool](t, ctx, `window.__both`), "the two answers did not stream at the same time")
	assert.Equal(t, wantBase, eval[string](t, ctx, lastAnswer("log-a")), "the base's column")
	assert.Equal(t, wantTuned, eval[string](t, ctx, lastAnswer("log-b")), "the adapter's column")
	assert.Equal(t, eval[float64](t, ctx, `document.getElementById('log-a').getBoundingClientRect().top`),
		eval[float64](t, ctx, `document.getElementById('log-b').getBoundingClientRect().top`), "the columns are not side by side")
	screenshot(t, ctx, "side-by-side")
}

// TestStudioAPIKey serves with an API key: the page asks for it on the first 401, says when
// a key is refused, keeps the right one for the session (a reload asks no more) and sends it
// on every call, the studio's own API included.
func TestStudioAPIKey(t *testing.T) {
	const key = "s3cret-key"
	s := newStudioServer(t, serverOptions{apiKey: key})
	want := s.greedy(t, "stories", chatPrompt, key, chatTokens)
	for _, auth := range []string{"", "Bearer wrong"} {
		req, _ := http.NewRequest("GET", s.URL+"/studio/api/runs", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "the studio's API without the key (%q)", auth)
	}
	ctx := browser(t, 1000, 700)

	do(t, ctx, 30*time.Second, chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#key-dialog")))
	assert.False(t, eval[bool](t, ctx, `document.body.classList.contains('ready')`))
	screenshot(t, ctx, "api-key")
	do(t, ctx, 10*time.Second, chromedp.SendKeys(chromedp.CSS("#key-input"), "wrong"), chromedp.Click(chromedp.CSS("#key-ok")))
	waitFor(t, ctx, 10*time.Second, `document.getElementById('key-error').textContent.includes('refused') && document.getElementById('key-dialog').open`)
	do(t, ctx, 10*time.Second, chromedp.SendKeys(chromedp.CSS("#key-input"), key), pressEnter(), chromedp.WaitVisible(chromedp.CSS("body.ready")))
	assert.False(t, eval[bool](t, ctx, `document.getElementById('key-dialog').open`))
	assert.Equal(t, key, eval[string](t, ctx, `sessionStorage.getItem('ecotune.apiKey')`))
	assert.Equal(t, 2, eval[int](t, ctx, `document.getElementById('model').options.length`))

	do(t, ctx, 10*time.Second, chatSettings(chatTokens), chromedp.SendKeys(chromedp.CSS("#prompt"), chatPrompt), pressEnter())
	waitFor(t, ctx, 30*time.Second, `document.querySelector('#log-a .msg.assistant.done') !== null`)
	assert.Equal(t, want, eval[string](t, ctx, lastAnswer("log-a")))

	// The Runs tab calls the studio's API, which needs the key too.
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS("#tab-runs")))
	waitFor(t, ctx, 10*time.Second, `document.getElementById('runs-dir').textContent.includes('runs')`)
	assert.Equal(t, "", eval[string](t, ctx, `document.getElementById('runs-note').textContent`))

	// A reload in the same session asks no more.
	do(t, ctx, 30*time.Second, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("body.ready")))
	assert.False(t, eval[bool](t, ctx, `document.getElementById('key-dialog').open`))
}
