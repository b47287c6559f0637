package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/internal/testmodel"
)

// fixture is stories260K, with a ChatML template, and three seeded random adapters of rank
// 8, which mixed steps stack (TestLoad).
type fixture struct {
	base     string
	adapters map[string]string // name → path
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	return newFixtureRanks(t, 8, 8, 8)
}

// newFixtureRanks is newFixture with alpha, beta and gamma of the given ranks.
func newFixtureRanks(t testing.TB, ranks ...int64) fixture {
	t.Helper()
	dir := t.TempDir()
	base := filepath.Join(dir, "stories.gguf")
	testmodel.WithChatTemplate(t, testenv.Stories(t), base, testmodel.ChatMLTemplate)
	f := fixture{base: base, adapters: map[string]string{}}
	for i, name := range []string{"alpha", "beta", "gamma"} {
		p := filepath.Join(dir, name+".gguf")
		testmodel.WriteLoRA(t, base, p, ranks[i], 0.3, uint64(i+1))
		f.adapters[name] = p
	}
	return f
}

func openEngine(t testing.TB, f fixture, opts Options) *Engine {
	t.Helper()
	e, err := Open(f.base, opts)
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	for _, name := range []string{"alpha", "beta", "gamma"} {
		_, err := e.LoadAdapter(name, f.adapters[name], 1)
		require.NoError(t, err)
	}
	return e
}

// reference generates as `ecotune generate` does: its own model, context and adapters.
func reference(t testing.TB, f fixture, adapters []AdapterRef, prompt string, opts bindings.GenerateOptions) []bindings.Token {
	t.Helper()
	m, err := bindings.LoadModel(f.base, bindings.ModelOptions{})
	require.NoError(t, err)
	defer m.Close()
	c, err := bindings.NewContext(m, bindings.ContextOptions{NCtx: 2048, Threads: 1, BatchInvariant: true})
	require.NoError(t, err)
	var scales []bindings.AdapterScale
	for _, a := range adapters {
		ad, err := bindings.LoadAdapter(m, f.adapters[a.Name])
		require.NoError(t, err)
		scales = append(scales, bindings.AdapterScale{Adapter: ad, Scale: a.Scale})
	}
	require.NoError(t, c.SetAdapters(scales))
	var out []bindings.Token
	for tok, err := range bindings.Generate(context.Background(), c, prompt, opts) {
		require.NoError(t, err)
		out = append(out, tok)
	}
	return out
}

var prompts = []string{
	"Once upon a time, there was a little",
	"The cat sat on the",
	"Lily and Ben went to the park. They",
	"One day, a big dog",
}

var adapterSets = [][]AdapterRef{
	nil,
	{{"alpha", 1}},
	{{"beta", 1}},
	{{"alpha", 0.5}, {"gamma", 1}},
}

// TestEngineMatchesGenerate runs every prompt under every adapter set at once (more
// requests than slots, four sets taking turns) and checks each output token for token
// against a single greedy generation in a context of its own.
func TestEngineMatchesGenerate(t *testing.T) {
	f := newFixture(t)
	e := openEngine(t, f, Options{Threads: 1, Parallel: 4, Ctx: 256})
	const n = 40
	type key struct{ p, s int }
	want := map[key][]bindings.Token{}
	for p, prompt := range prompts {
		for s, set := range adapterSets {
			want[key{p, s}] = reference(t, f, set, prompt, bindings.GenerateOptions{MaxTokens: n})
		}
	}
	// The adapters must matter, or the test could not tell sets apart.
	assert.NotEqual(t, want[key{0, 0}], want[key{0, 1}])
	assert.NotEqual(t, want[key{0, 1}], want[key{0, 2}])

	var wg sync.WaitGroup
	for k := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := e.Submit(context.Background(), Request{Prompt: prompts[k.p], Adapters: adapterSets[k.s], MaxTokens: n, Logprobs: -1})
			if !assert.NoError(t, err) {
				return
			}
			var got []bindings.Token
			for tok, err := range s.Tokens() {
				if !assert.NoError(t, err) {
					return
				}
				got = append(got, bindings.Token{ID: tok.ID, Text: tok.Text})
			}
			assert.Equal(t, want[k], got, "prompt %d, adapter set %d", k.p, k.s)
			r := s.Result()
			assert.Equal(t, len(want[k]), r.CompletionTokens)
			assert.Equal(t, FinishLength, r.FinishReason)
		}()
	}
	wg.Wait()
	assert.Equal(t, Stats{Slots: 4, Busy: 0, Waiting: 0, Adapters: 3}, e.Stats())
}

func TestEngineLimits(t *testing.T) {
	f := newFixture(t)
	e := openEngine(t, f, Options{Threads: 1, Parallel: 1, Ctx: 64, Queue: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	long, err := e.Submit(ctx, Request{Prompt: "Once upon a time", Logprobs: -1})
	require.NoError(t, err)
	waiting, err := e.Submit(ctx, Request{Prompt: "Once upon a time", Logprobs: -1})
	require.NoError(t, err)
	_, err = e.Submit(ctx, Request{Prompt: "Once upon a time", Logprobs: -1})
	assert.ErrorIs(t, err, ErrQueueFull, "one slot busy and one request waiting fill a queue of 1")

	_, err = e.Submit(ctx, Request{Prompt: "x", Adapters: []AdapterRef{{"nope", 1}}})
	assert.ErrorIs(t, err, ErrUnknownAdapter)

	var tooLong *PromptTooLongError
	_, err = e.Submit(ctx, Request{Tokens: make([]int32, 64)})
	require.ErrorAs(t, err, &tooLong)
	assert.Equal(t, PromptTooLongError{Tokens: 64, Context: 64}, *tooLong)
	_, err = e.Submit(ctx, Request{Tokens: []int32{1, 1 << 20}})
	assert.ErrorContains(t, err, "prompt[1]: token 1048576 is outside the vocabulary")

	cancel()
	for _, s := range []*Stream{long, waiting} {
		var last error
		for _, err := range s.Tokens() {
			last = err
		}
		assert.ErrorIs(t, last, context.Canceled)
	}
	// The scheduler notices within one decode step.
	require.Eventually(t, func() bool { return e.Stats().Busy == 0 && e.Stats().Waiting == 0 }, 5*time.Second, time.Millisecond)
	text, r, err := e.Generate(context.Background(), Request{Prompt: "Once upon a time", MaxTokens: 3, Logprobs: -1})
	require.NoError(t, err)
	assert.NotEmpty(t, text)
	assert.Equal(t, 3, r.CompletionTokens)
}

// TestUnloadWhileStreaming unloads an adapter while requests stream with it: they all
// finish with their full output, and afterwards the name is unknown.
func TestUnloadWhileStreaming(t *testing.T) {
	f := newFixture(t)
	e := openEngine(t, f, Options{Threads: 1, Parallel: 2, Ctx: 128})
	want := reference(t, f, []AdapterRef{{"alpha", 1}}, prompts[0], bindings.GenerateOptions{MaxTokens: 60})
	var streams []*Stream
	for range 3 {
		s, err := e.Submit(context.Background(), Request{Prompt: prompts[0], Adapters: []AdapterRef{{"alpha", 1}}, MaxTokens: 60, Logprobs: -1})
		require.NoError(t, err)
		streams = append(streams, s)
	}
	unloaded := make(chan error, 1)
	go func() { unloaded <- e.UnloadAdapter(context.Background(), "alpha") }()
	for _, s := range streams {
		var got []bindings.Token
		for tok, err := range s.Tokens() {
			require.NoError(t, err)
			got = append(got, bindings.Token{ID: tok.ID, Text: tok.Text})
		}
		assert.Equal(t, want, got)
	}
	require.NoError(t, <-unloaded)
	_, err := e.Submit(context.Background(), Request{Prompt: "x", Adapters: []AdapterRef{{"alpha", 1}}})
	assert.ErrorIs(t, err, ErrUnknownAdapter)
	assert.Len(t, e.Adapters(), 2)
	// Loaded again under the same name, it decodes as before.
	_, err = e.LoadAdapter("alpha", f.adapters["alpha"], 1)
	require.NoError(t, err)
	text, _, err := e.Generate(context.Background(), Request{Prompt: prompts[0], Adapters: []AdapterRef{{"alpha", 1}}, MaxTokens: 60, Logprobs: -1})
	require.NoError(t, err)
	var wantText string
	for _, tok := range want {
		wantText += tok.Text
	}
	assert.Equal(t, wantText, text)
}

// TestLogprobs checks the reported log-probabilities against a float64 log-softmax of the
// logits libllama computes for the same prefix in a context of its own.
func TestLogprobs(t *testing.T) {
	f := newFixture(t)
	e := openEngine(t, f, Options{Threads: 1, Parallel: 2, Ctx: 128})
	s, err := e.Submit(context.Background(), Request{Prompt: prompts[1], MaxTokens: 5, Logprobs: 3})
	require.NoError(t, err)
	var toks []Token
	for tok, err := range s.Tokens() {
		require.NoError(t, err)
		toks = append(toks, tok)
	}
	require.Len(t, toks, 5)

	m, err := bindings.LoadModel(f.base, bindings.ModelOptions{})
	require.NoError(t, err)
	defer m.Close()
	c, err := bindings.NewContext(m, bindings.ContextOptions{NCtx: 128, Threads: 1, BatchInvariant: true})
	require.NoError(t, err)
	ids, err := m.PromptTokens(prompts[1], true)
	require.NoError(t, err)
	b, err := bindings.NewBatch(128, 1)
	require.NoError(t, err)
	defer b.Close()
	// The same path the engine takes: the prompt in one batch, then one token at a time,
	// so the logits are the same numbers and only the log-softmax is compared.
	b.Clear()
	for k, id := range ids {
		b.Add(id, int32(k), []int32{0}, k == len(ids)-1)
	}
	require.NoError(t, c.Decode(b))
	for i, tok := range toks {
		logits, err := c.Logits(-1)
		require.NoError(t, err)
		lp := logSoftmax64(logits)
		// Greedy picks the most likely token, which leads the top list.
		assert.Equal(t, tok.ID, tok.Top[0].ID, "token %d", i)
		require.Len(t, tok.Top, 3)
		// The engine rounds each float64 log-probability to float32 once: half an ulp of a
		// value below 32 in magnitude is under 2e-6.
		assert.InDelta(t, lp[tok.ID], float64(tok.Logprob), 2e-6, "token %d", i)
		for _, alt := range tok.Top {
			assert.InDelta(t, lp[alt.ID], float64(alt.Logprob), 2e-6)
		}
		assert.GreaterOrEqual(t, tok.Top[0].Logprob, tok.Top[1].Logprob)
		assert.GreaterOrEqual(t, tok.Top[1].Logprob, tok.Top[2].Logprob)
		b.Clear()
		b.Add(tok.ID, int32(len(ids)+i), []int32{0}, true)
		require.NoError(t, c.Decode(b))
	}
}

// logSoftmax64 is the reference: everything in float64.
func logSoftmax64(logits []float32) []float64 {
	mx := float64(logits[0])
	for _, v := range logits {
		mx = max(mx, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	out := make([]float64, len(logits))
	for i, v := range logits {
		out[i] = float64(v) - mx - math.Log(sum)
	}
	return out
}

// TestJSONGrammar: with the JSON grammar every output that ends by itself is one JSON
// object, and sampled outputs under several seeds stay inside the grammar.
func TestJSONGrammar(t *testing.T) {
	f := newFixture(t)
	e := openEngine(t, f, Options{Threads: 1, Parallel: 2, Ctx: 256})
	ended := 0
	for seed := range uint32(6) {
		text, r, err := e.Generate(context.Background(), Request{Prompt: "{\"name\": ", MaxTokens: 120, Logprobs: -1,
			Sampler: bindings.SamplerOptions{Temperature: 1, Seed: seed, Grammar: bindings.JSONGrammar}})
		require.NoError(t, err)
		require.NotEmpty(t, text)
		assert.Equal(t, "{", text[:1], "seed %d: %q", seed, text)
		if r.FinishReason == FinishStop {
			ended++
			var v map[string]any
			assert.NoError(t, json.Unmarshal([]byte(text), &v), "seed %d: %q", seed, text)
		}
	}
	t.Logf("%d of 6 grammar-constrained outputs closed their object before 120 tokens", ended)
	_, err := e.Submit(context.Background(), Request{Prompt: "x", Sampler: bindings.SamplerOptions{Grammar: "root ::= ("}})
	var inv *InvalidRequestError
	assert.True(t, errors.As(err, &inv), fmt.Sprint(err))
}

// TestCancelFreesWithinOneStep: after a request's context ends, the scheduler starts at
// most one more decode step (the one that may be running) before its slot is free.
func TestCancelFreesWithinOneStep(t *testing.T) {
	f := newFixture(t)
	e := openEngine(t, f, Options{Threads: 1, Parallel: 2, Ctx: 2048})
	var steps atomic.Int64
	e.OnStep(func(Event) { steps.Add(1) })
	ctx, cancel := context.WithCancel(context.Background())
	s, err := e.Submit(ctx, Request{Prompt: prompts[0], Logprobs: -1})
	require.NoError(t, err)
	n := 0
	for range s.Tokens() {
		if n++; n == 10 {
			break
		}
	}
	cancel()
	// A step may be running as the context ends; it can finish after this load.
	before := steps.Load()
	require.Eventually(t, func() bool { return e.Stats().Busy == 0 }, 5*time.Second, 100*time.Microsecond)
	assert.LessOrEqual(t, steps.Load()-before, int64(1), "steps decoded after the cancel")
}

// TestGroupedPrompts: requests that arrive together with prompts of one length read them
// in one batch, and each still generates token for token what a context of its own does.
// Two of them are longer than groupedPromptMax (they are read alone), on two threads so
// that the products split their rows as a served model's do.
func TestGroupedPrompts(t *testing.T) {
	f := newFixture(t)
	e := openEngine(t, f, Options{Threads: 2, Parallel: 8, Ctx: 256})
	const n = 24
	short := func(i int) string { return fmt.Sprintf("%d. Once upon a time, there was a little", 10+i) }
	long := func(i int) string { return strings.Repeat(short(i)+" girl. ", 6) }
	var reqs []Request
	for i := range 6 {
		reqs = append(reqs, Request{Prompt: short(i), Adapters: adapterSets[1], MaxTokens: n, Logprobs: -1})
	}
	for i := range 2 {
		reqs = append(reqs, Request{Prompt: long(i), Adapters: adapterSets[1], MaxTokens: n, Logprobs: -1})
	}
	tokens := func(p string) int {
		toks, err := e.Model().Tokenize(p, true, false)
		require.NoError(t, err)
		return len(toks)
	}
	for i := range 6 {
		require.Equal(t, tokens(short(0)), tokens(short(i)), "the short prompts must be of one length")
	}
	require.Greater(t, tokens(long(0)), groupedPromptMax)

	// The scheduler holds its first step until every request is queued, so that the next
	// step admits them all at once.
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release) // before the engine's Close, registered earlier
	var mu sync.Mutex
	var events []Event
	e.OnStep(func(ev Event) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	first, err := e.Submit(context.Background(), Request{Prompt: prompts[0], MaxTokens: 1, Logprobs: -1})
	require.NoError(t, err)
	<-entered
	var streams []*Stream
	for _, r := range reqs {
		s, err := e.Submit(context.Background(), r)
		require.NoError(t, err)
		streams = append(streams, s)
	}
	release()
	for range first.Tokens() {
	}
	for i, s := range streams {
		var got []bindings.Token
		for tok, err := range s.Tokens() {
			require.NoError(t, err)
			got = append(got, bindings.Token{ID: tok.ID, Text: tok.Text})
		}
		want := reference(t, f, reqs[i].Adapters, reqs[i].Prompt, bindings.GenerateOptions{MaxTokens: n})
		assert.Equal(t, want, got, "request %d", i)
	}
	// The step that read the eight prompts: the six short ones in one batch, the two long
	// ones alone, then the first generated token of each in a fourth.
	mu.Lock()
	defer mu.Unlock()
	read := 6*tokens(short(0)) + 2*tokens(long(0)) + 8
	assert.True(t, slices.ContainsFunc(events, func(ev Event) bool { return ev.Tokens == read && ev.Batches == 4 }),
		"no step read the 8 prompts in 3 batches and generated in a fourth: %+v", events[:min(len(events), 4)])
}

// TestSubmitWait: with the slot and the queue taken, SubmitWait waits for room instead of
// failing, and gives up when its context ends.
func TestSubmitWait(t *testing.T) {
	f := newFixture(t)
	e := openEngine(t, f, Options{Threads: 1, Parallel: 1, Ctx: 128, Queue: 1})
	// The scheduler waits in its first step until the queue has been found full: on a
	// busy machine the first request could otherwise end, and the second take the slot,
	// before the third is submitted (it did, once).
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release) // before the engine's Close, registered earlier
	e.OnStep(func(Event) { <-gate })
	var streams []*Stream
	for range 2 {
		s, err := e.Submit(context.Background(), Request{Prompt: prompts[0], MaxTokens: 30, Logprobs: -1})
		require.NoError(t, err)
		streams = append(streams, s)
	}
	_, err := e.Submit(context.Background(), Request{Prompt: prompts[0], MaxTokens: 30, Logprobs: -1})
	require.ErrorIs(t, err, ErrQueueFull)
	release()
	short, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	// Either the slot frees within the millisecond (then it is accepted) or the wait ends.
	if s, err := e.SubmitWait(short, Request{Prompt: prompts[0], MaxTokens: 1, Logprobs: -1}); err == nil {
		for range s.Tokens() {
		}
	} else {
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	}
	s, err := e.SubmitWait(context.Background(), Request{Prompt: prompts[0], MaxTokens: 30, Logprobs: -1})
	require.NoError(t, err)
	streams = append(streams, s)
	var texts []string
	for _, s := range streams {
		var sb strings.Builder
		for tok, err := range s.Tokens() {
			require.NoError(t, err)
			sb.WriteString(tok.Text)
		}
		texts = append(texts, sb.String())
	}
	assert.Equal(t, texts[0], texts[1])
	assert.Equal(t, texts[0], texts[2])
}

// TestSubmitWaitAfterCancel: a waiting request that is cancelled leaves the queue without
// taking a slot; SubmitWait callers waiting behind it must still get in once the slot
// frees. (They waited for an admission that never came, and the engine went idle.)
func TestSubmitWaitAfterCancel(t *testing.T) {
	f := newFixture(t)
	e := openEngine(t, f, Options{Threads: 1, Parallel: 1, Ctx: 256, Queue: 1})
	running, err := e.Submit(context.Background(), Request{Prompt: prompts[0], MaxTokens: 200, Logprobs: -1})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	waiting, err := e.Submit(ctx, Request{Prompt: prompts[0], MaxTokens: 30, Logprobs: -1})
	require.NoError(t, err)
	got := make(chan error, 1)
	go func() {
		s, err := e.SubmitWait(context.Background(), Request{Prompt: prompts[0], MaxTokens: 2, Logprobs: -1})
		if err == nil {
			for _, err = range s.Tokens() {
			}
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond) // SubmitWait finds the queue full and waits
	cancel()
	for _, err := range waiting.Tokens() {
		if err != nil {
			assert.ErrorIs(t, err, context.Canceled)
		}
	}
	n := 0
	for range running.Tokens() {
		n++
	}
	t.Logf("the running request generated %d tokens", n)
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("SubmitWait still waiting after the queue emptied and the slot freed")
	}
}
