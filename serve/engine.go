// Package serve is ecotune's inference server: an Engine that decodes many requests
// together on one base model with per-request LoRA adapters (continuous batching), and an
// http.Handler that speaks OpenAI's and Ollama's APIs over it. A Go program can use the
// Engine alone, without HTTP.
package serve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecotune/ecotune/bindings"
)

// Options configures Open; zero fields take the defaults noted.
type Options struct {
	Name      string // the base model's name in the APIs; "" = its file name without .gguf
	Parallel  int    // sequences decoded together; 0 = 4
	Ctx       int    // context tokens of each sequence; 0 = 2048
	Batch     int    // most prompt tokens one decode step takes; 0 = Ctx (as `ecotune generate`)
	Threads   int    // CPU threads; 0 = one per CPU
	GPULayers int    // layers to offload in GPU builds; 0 = none, -1 = all
	Queue     int    // requests that may wait for a free slot; 0 = 64
	Turn      int    // decode steps an adapter set keeps the context while others wait; 0 = 4
	// Mix decodes requests of different adapter sets in one step, with adapters applied
	// per sequence, instead of each set in steps of its own (see docs/serve.md; `ecotune
	// serve` mixes unless --mix-sets=false).
	Mix bool

	// RPC lists HOST:PORT endpoints of llama.cpp rpc-servers that hold the offloaded layers
	// (GPULayers of them); trusted networks only, as the protocol has no authentication.
	RPC []string
}

// Engine serves one base model and its adapters: requests are admitted into the context's
// sequence slots, decoded together one token a step, and retired as they end. Its methods
// are safe for concurrent use; one goroutine owns every call into the context.
type Engine struct {
	model    *bindings.Model
	lctx     *bindings.Context
	name     string
	opts     Options
	adapters *registry
	loaded   time.Time

	mu      sync.Mutex // guards pending and closed
	pending []*job
	room    chan struct{} // closed (and replaced) when a request leaves the queue or a slot frees
	closed  bool

	wake chan struct{} // a request or command arrived (capacity 1)
	cmds chan func()   // run by the scheduler goroutine between decode steps
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the scheduler goroutine has returned
	busy atomic.Int32  // slots holding a request
	wait atomic.Int32  // requests waiting for a slot
	hook atomic.Pointer[func(Event)]

	holes bool // a slot was freed since compact last looked (scheduler goroutine only)
	// noMix is set when the context refused adapters per sequence (an adapter of mixed
	// ranks): sets then take turns (scheduler goroutine only).
	noMix bool
}

// Open loads the base model and creates the context the scheduler decodes in.
func Open(path string, opts Options) (*Engine, error) {
	if opts.Parallel == 0 {
		opts.Parallel = 4
	}
	if opts.Ctx == 0 {
		opts.Ctx = 2048
	}
	if opts.Batch == 0 {
		opts.Batch = opts.Ctx
	}
	if opts.Queue == 0 {
		opts.Queue = 64
	}
	if opts.Turn == 0 {
		opts.Turn = 4
	}
	switch {
	case opts.Parallel < 1:
		return nil, fmt.Errorf("serve: parallel %d must be at least 1", opts.Parallel)
	case opts.Ctx < 8:
		return nil, fmt.Errorf("serve: a sequence's context of %d tokens is too small", opts.Ctx)
	case opts.Batch < opts.Parallel:
		return nil, fmt.Errorf("serve: batch %d must hold one token of each of the %d parallel sequences", opts.Batch, opts.Parallel)
	case opts.Turn < 1:
		return nil, fmt.Errorf("serve: turn %d must be at least 1", opts.Turn)
	case opts.Queue < 0:
		return nil, fmt.Errorf("serve: queue %d must not be negative", opts.Queue)
	}
	if opts.Name == "" {
		opts.Name = strings.TrimSuffix(filepath.Base(path), ".gguf")
	}
	model, err := bindings.LoadModel(path, bindings.ModelOptions{GPULayers: opts.GPULayers, RPCServers: opts.RPC})
	if err != nil {
		return nil, err
	}
	lctx, err := bindings.NewContext(model, bindings.ContextOptions{
		NCtx:    opts.Parallel * opts.Ctx,
		NBatch:  opts.Batch,
		NSeqMax: opts.Parallel,
		Threads: opts.Threads,
		// A request's output then does not depend on what else is decoding (see the
		// scheduling policy in scheduler.go), and equals `ecotune generate`'s.
		BatchInvariant: true,
		// Greedy requests read their pick from the graph (the same token).
		GreedyInGraph: true,
	})
	if err != nil {
		model.Close()
		return nil, err
	}
	if lctx.NCtxSeq() < opts.Ctx {
		lctx.Close()
		model.Close()
		return nil, fmt.Errorf("serve: llama.cpp gave each sequence %d tokens of context, not %d", lctx.NCtxSeq(), opts.Ctx)
	}
	e := &Engine{
		model: model, lctx: lctx, name: opts.Name, opts: opts, adapters: newRegistry(), loaded: time.Now(),
		room: make(chan struct{}), wake: make(chan struct{}, 1), cmds: make(chan func()), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go e.run()
	return e, nil
}

// Close stops the scheduler (requests still running end with ErrClosed) and frees the
// adapters, the context and the model. It is idempotent.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.done
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	close(e.stop)
	<-e.done
	for _, a := range e.adapters.all() {
		a.a.Close()
	}
	e.lctx.Close()
	return e.model.Close()
}

// Name returns the base model's name in the APIs.
func (e *Engine) Name() string { return e.name }

// Model returns the base model (for its metadata, tokenizer and chat template).
func (e *Engine) Model() *bindings.Model { return e.model }

// Loaded returns when the base model was loaded.
func (e *Engine) Loaded() time.Time { return e.loaded }

// Options returns the options in effect, defaults filled in.
func (e *Engine) Options() Options { return e.opts }

// Stats is a snapshot of the scheduler's load.
type Stats struct {
	Slots, Busy, Waiting, Adapters int
}

// Stats returns the scheduler's load now.
func (e *Engine) Stats() Stats {
	return Stats{Slots: e.opts.Parallel, Busy: int(e.busy.Load()), Waiting: int(e.wait.Load()), Adapters: len(e.adapters.list())}
}

// Event is what the scheduler reports after each decode step, for metrics.
type Event struct {
	Tokens  int           // tokens decoded in the step (prompt and generated)
	Seqs    int           // sequences that got a token
	Sets    int           // adapter sets among them (more than one when sets decode together)
	Batches int           // batches decoded: prompt chunks (grouped or alone), then the generated tokens
	Took    time.Duration // the decode and sampling
	// Stacked: each token computed its own adapter's products alone, as one adapter costs
	// (bindings.Context.SeqAdaptersStacked)
	Stacked bool
}

// OnStep sets a function the scheduler calls after every decode step (nil to stop); it
// must return quickly.
func (e *Engine) OnStep(f func(Event)) {
	if f == nil {
		e.hook.Store(nil)
		return
	}
	e.hook.Store(&f)
}

// LoadAdapter loads a LoRA GGUF for the base under name, with the scale used when a
// request names it as its model. An adapter for another base is refused, naming the
// mismatch; the base stays loaded and requests keep running.
func (e *Engine) LoadAdapter(name, path string, scale float32) (AdapterInfo, error) {
	if err := validName(name); err != nil {
		return AdapterInfo{}, err
	}
	if name == e.name {
		return AdapterInfo{}, &InvalidRequestError{Field: "name", Msg: fmt.Sprintf("%q is the base model's name", name)}
	}
	if _, err := os.Stat(path); err != nil {
		return AdapterInfo{}, &InvalidRequestError{Field: "path", Msg: err.Error()}
	}
	a, err := bindings.LoadAdapter(e.model, path)
	if err != nil {
		return AdapterInfo{}, &InvalidRequestError{Field: "path", Msg: err.Error()}
	}
	info, err := e.adapters.add(name, path, scale, a)
	if err != nil {
		a.Close()
		return AdapterInfo{}, &InvalidRequestError{Field: "name", Msg: err.Error()}
	}
	return info, nil
}

// validName keeps adapter names usable as OpenAI model ids and in URLs.
func validName(name string) error {
	if name == "" || len(name) > 128 || strings.ContainsAny(name, "/\\?#% \t\r\n\x00") {
		return &InvalidRequestError{Field: "name", Msg: fmt.Sprintf("%q is not a usable adapter name (1–128 characters, no spaces, slashes, ?, # or %%)", name)}
	}
	return nil
}

// UnloadAdapter hides the adapter from new requests, waits until no request uses it (or
// ctx ends, which leaves it hidden and still unloading), then frees it.
func (e *Engine) UnloadAdapter(ctx context.Context, name string) error {
	entry, err := e.adapters.startUnload(name)
	if err != nil {
		return err
	}
	select {
	case <-entry.idle:
	case <-ctx.Done():
		go func() { <-entry.idle; e.freeAdapter(entry) }()
		return ctx.Err()
	}
	e.freeAdapter(entry)
	return nil
}

// freeAdapter closes an idle adapter on the scheduler goroutine, between decode steps.
func (e *Engine) freeAdapter(entry *adapterEntry) {
	ran := e.do(func() { entry.a.Close() })
	if !ran {
		entry.a.Close()
	}
	e.adapters.remove(entry)
}

// Adapters lists the loaded adapters by ID.
func (e *Engine) Adapters() []AdapterInfo { return e.adapters.list() }

// AdapterName returns the name of the adapter with the given ID.
func (e *Engine) AdapterName(id int) (string, bool) { return e.adapters.nameByID(id) }

// HasAdapter reports whether name is a loaded adapter.
func (e *Engine) HasAdapter(name string) bool {
	for _, a := range e.adapters.list() {
		if a.Name == name {
			return true
		}
	}
	return false
}

// do runs f on the scheduler goroutine and waits; false when the scheduler has stopped.
func (e *Engine) do(f func()) bool {
	ran := make(chan struct{})
	select {
	case e.cmds <- func() { f(); close(ran) }:
		<-ran
		return true
	case <-e.done:
		return false
	}
}

// Submit validates and queues a request; the Stream delivers its tokens. ctx bounds the
// request: when it ends, the sequence is freed within one decode step. It fails at once
// with ErrQueueFull, ErrClosed, an unknown adapter, a *PromptTooLongError or an
// *InvalidRequestError.
func (e *Engine) Submit(ctx context.Context, req Request) (*Stream, error) {
	if req.MaxTokens < 0 {
		return nil, &InvalidRequestError{Field: "max_tokens", Msg: fmt.Sprintf("%d is negative", req.MaxTokens)}
	}
	tokens := req.Tokens
	if tokens == nil {
		var err error
		if tokens, err = e.model.PromptTokens(req.Prompt, true); err != nil {
			return nil, &InvalidRequestError{Field: "prompt", Msg: err.Error()}
		}
	} else {
		tokens = append([]int32(nil), tokens...)
		for i, t := range tokens {
			if t < 0 || int(t) >= e.model.VocabSize() {
				return nil, &InvalidRequestError{Field: fmt.Sprintf("prompt[%d]", i), Msg: fmt.Sprintf("token %d is outside the vocabulary [0, %d)", t, e.model.VocabSize())}
			}
		}
	}
	if len(tokens) == 0 {
		return nil, &InvalidRequestError{Field: "prompt", Msg: "is empty"}
	}
	if len(tokens) >= e.opts.Ctx {
		return nil, &PromptTooLongError{Tokens: len(tokens), Context: e.opts.Ctx}
	}
	smpl, err := bindings.NewSampler(e.model, req.Sampler)
	if err != nil {
		return nil, &InvalidRequestError{Field: "sampling", Msg: err.Error()}
	}
	for _, t := range tokens {
		smpl.Accept(t) // lets the repetition penalties see the prompt, as `ecotune generate` does
	}
	set, err := e.adapters.acquire(req.Adapters)
	if err != nil {
		smpl.Close()
		return nil, err
	}
	j := newJob(ctx, req, tokens, smpl, set)

	e.mu.Lock()
	switch {
	case e.closed:
		err = ErrClosed
	case len(e.pending) >= e.opts.Queue+max(0, e.opts.Parallel-int(e.busy.Load())):
		err = ErrQueueFull
	default:
		e.pending = append(e.pending, j)
		e.wait.Store(int32(len(e.pending)))
	}
	e.mu.Unlock()
	if err != nil {
		e.release(j)
		return nil, err
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return &Stream{j: j}, nil
}

// SubmitWait is Submit for callers that would rather wait than be told the queue is full
// (a batch job, say): it waits for room until ctx ends.
func (e *Engine) SubmitWait(ctx context.Context, req Request) (*Stream, error) {
	for {
		e.mu.Lock()
		room := e.room
		e.mu.Unlock()
		s, err := e.Submit(ctx, req)
		if !errors.Is(err, ErrQueueFull) {
			return s, err
		}
		select {
		case <-room:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-e.done:
			return nil, ErrClosed
		}
	}
}

// release frees what a job holds outside the context.
func (e *Engine) release(j *job) {
	j.sampler.Close()
	e.adapters.release(j.set)
}

// Generate submits req and collects its whole output.
func (e *Engine) Generate(ctx context.Context, req Request) (string, Result, error) {
	s, err := e.Submit(ctx, req)
	if err != nil {
		return "", Result{}, err
	}
	var sb strings.Builder
	for tok, err := range s.Tokens() {
		if err != nil {
			return sb.String(), s.Result(), err
		}
		sb.WriteString(tok.Text)
	}
	return sb.String(), s.Result(), nil
}

// ChatPrompt formats messages with the base model's chat template, ending with the
// opening of the assistant's turn. Without a template the error wraps
// bindings.ErrNoChatTemplate.
func (e *Engine) ChatPrompt(msgs []bindings.ChatMessage) (string, error) {
	p, err := e.model.ApplyChatTemplate(msgs, true)
	if errors.Is(err, bindings.ErrNoChatTemplate) {
		return "", &InvalidRequestError{Field: "messages", Msg: fmt.Sprintf("model %s has no chat template; use the completions API", e.name), Err: err}
	}
	return p, err
}
