package studio

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	chatPrompt = "Once upon a time"
	chatTokens = 48
)

// observe records, on every change of the log's text, the length of the newest answer and
// where the composer and the log are, so a test can tell that the answer grew in steps and
// that nothing moved while it did.
const observe = `(() => {
	window.__obs = [];
	const log = document.getElementById('%s');
	const box = (id) => document.getElementById(id).getBoundingClientRect();
	new MutationObserver(() => {
		const a = log.querySelectorAll('.msg.assistant .text');
		window.__obs.push({len: a.length ? a[a.length - 1].textContent.length : 0, composer: box('composer').top, log: box('%s').height});
	}).observe(log, {subtree: true, childList: true, characterData: true});
})()`

type observation struct {
	Len      int
	Composer float64
	Log      float64
}

// lastAnswer is the text of the newest answer in a log.
func lastAnswer(log string) string {
	return fmt.Sprintf(`(() => { const a = document.querySelectorAll('#%s .msg.assistant .text'); return a.length ? a[a.length - 1].textContent : ''; })()`, log)
}

// chatSettings sets greedy sampling and the answer length in the page.
func chatSettings(maxTokens int) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(setValue("#temperature", "0"), setValue("#max_tokens", fmt.Sprint(maxTokens)))
}

// TestStudioChatStreams types a prompt, sends it with Enter and checks that the answer
// arrives in pieces, equals the server's whole greedy answer, and moves nothing on the page
// while it streams; then that Escape stops a long answer, and that the page fits a phone.
func TestStudioChatStreams(t *testing.T) {
	s := newStudioServer(t, serverOptions{})
	want := s.greedy(t, "stories", chatPrompt, "", chatTokens)
	require.Greater(t, len(want), 40, "the greedy answer is too short to watch it grow")
	ctx := browser(t, 1200, 800)
	s.delay.Store(int64(15 * time.Millisecond))

	start := time.Now()
	do(t, ctx, 30*time.Second, chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.CSS("body.ready")))
	assert.Equal(t, "stories", eval[string](t, ctx, `document.getElementById('model').value`))
	assert.Equal(t, 2, eval[int](t, ctx, `document.getElementById('model').options.length`), "the base and the adapter")
	do(t, ctx, 10*time.Second, chatSettings(chatTokens), chromedp.Evaluate[chromedp.Void](fmt.Sprintf(observe, "log-a", "log-a")),
		chromedp.SendKeys(chromedp.CSS("#prompt"), chatPrompt), pressEnter())
	waitFor(t, ctx, 30*time.Second, `document.querySelector('#log-a .msg.assistant.done') !== null`)
	t.Logf("chat answered in %s", time.Since(start).Round(time.Millisecond))

	assert.Equal(t, want, eval[string](t, ctx, lastAnswer("log-a")), "the streamed answer differs from the whole one")
	obs := eval[[]observation](t, ctx, `window.__obs`)
	lengths := map[int]bool{}
	for i, o := range obs {
		lengths[o.Len] = true
		if i > 0 {
			assert.GreaterOrEqual(t, o.Len, obs[i-1].Len, "the answer shrank while streaming")
		}
		assert.InDelta(t, obs[0].Composer, o.Composer, 0.5, "the composer moved while the answer streamed")
		assert.InDelta(t, obs[0].Log, o.Log, 0.5, "the log changed its height while the answer streamed")
	}
	assert.GreaterOrEqual(t, len(lengths), 10, "the answer did not grow in steps: %d distinct lengths", len(lengths))
	assert.Equal(t, "", eval[string](t, ctx, `document.getElementById('prompt').value`), "the prompt box was not cleared")
	assert.Contains(t, eval[string](t, ctx, `document.querySelector('#log-a .msg.assistant .meta').textContent`), "tokens")
	screenshot(t, ctx, "chat")

	// Regenerate: the same greedy answer again, in place of the first.
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS("#regen"), chromedp.NodeEnabled))
	waitFor(t, ctx, 30*time.Second, `document.querySelectorAll('#log-a .msg.assistant').length === 1 && document.querySelector('#log-a .msg.assistant.done') !== null`)
	assert.Equal(t, want, eval[string](t, ctx, lastAnswer("log-a")))

	// Escape stops a long answer: it ends marked stopped and grows no more.
	s.delay.Store(int64(60 * time.Millisecond))
	do(t, ctx, 10*time.Second, setValue("#max_tokens", "400"), setValue("#temperature", "0.9"),
		chromedp.SendKeys(chromedp.CSS("#prompt"), "Tell me a long story"), pressEnter())
	waitFor(t, ctx, 30*time.Second, `document.querySelectorAll('#log-a .msg.assistant').length === 2 && `+lastAnswer("log-a")+`.length > 5`)
	assert.False(t, eval[bool](t, ctx, `document.getElementById('stop').disabled`), "Stop is disabled while streaming")
	do(t, ctx, 10*time.Second, chromedp.KeyEvent(kb.Escape))
	waitFor(t, ctx, 10*time.Second, `document.querySelectorAll('#log-a .msg.assistant.done').length === 2`)
	stopped := eval[string](t, ctx, lastAnswer("log-a"))
	assert.Contains(t, eval[string](t, ctx, `[...document.querySelectorAll('#log-a .msg.assistant .meta')].pop().textContent`), "stopped")
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, stopped, eval[string](t, ctx, lastAnswer("log-a")), "the answer grew after Escape")
	assert.True(t, eval[bool](t, ctx, `document.getElementById('stop').disabled`))

	// A phone's width: nothing sticks out sideways.
	do(t, ctx, 10*time.Second, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	do(t, ctx, 10*time.Second, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("body.ready")), chatSettings(chatTokens),
		chromedp.SendKeys(chromedp.CSS("#prompt"), chatPrompt), pressEnter())
	waitFor(t, ctx, 30*time.Second, `document.querySelector('#log-a .msg.assistant.done') !== null`)
	assert.Equal(t, want, eval[string](t, ctx, lastAnswer("log-a")))
	assert.LessOrEqual(t, eval[int](t, ctx, `document.documentElement.scrollWidth`), 390, "the page is wider than the phone")
	assert.False(t, eval[bool](t, ctx, `document.querySelector('.settings details').open`), "the settings take the phone's screen")
	screenshot(t, ctx, "phone")
}
