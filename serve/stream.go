package serve

import (
	"context"
	"iter"
	"sync"
	"time"

	"github.com/ecotune/ecotune/bindings"
)

// job is one request from Submit to its end. The scheduler goroutine owns the decoding
// fields; out is how tokens cross to the reader.
type job struct {
	ctx     context.Context
	req     Request
	prompt  []int32
	sampler *bindings.Sampler
	set     *adapterSet
	// group is what the scheduler keeps in runs of consecutive slots: the set's key when
	// sets take turns, "" when they decode together (libllama decodes a graph per run).
	group string
	text  *bindings.TextStream

	// Owned by the scheduler.
	seq      int32
	fed      int   // prompt tokens decoded so far
	next     int32 // the token to decode next, once the prompt is in
	pos      int32 // the position next takes
	produced int
	queued   time.Time
	admitted time.Time
	first    time.Time

	out outbox
}

// outbox is a job's output: the scheduler appends and never blocks on a slow reader.
type outbox struct {
	mu     sync.Mutex
	tokens []Token
	done   bool
	err    error
	result Result
	signal chan struct{} // capacity 1: something was added
}

func newJob(ctx context.Context, req Request, prompt []int32, smpl *bindings.Sampler, set *adapterSet) *job {
	return &job{
		ctx: ctx, req: req, prompt: prompt, sampler: smpl, set: set,
		text: bindings.NewTextStream(req.Stop), seq: -1, queued: time.Now(),
		out: outbox{signal: make(chan struct{}, 1)},
	}
}

func (o *outbox) push(t Token) {
	o.mu.Lock()
	o.tokens = append(o.tokens, t)
	o.mu.Unlock()
	o.notify()
}

func (o *outbox) finish(r Result, err error) {
	o.mu.Lock()
	o.done, o.result, o.err = true, r, err
	o.mu.Unlock()
	o.notify()
}

func (o *outbox) notify() {
	select {
	case o.signal <- struct{}{}:
	default:
	}
}

// Stream is a submitted request's output.
type Stream struct {
	j *job
}

// Tokens yields the generated tokens as they are decoded; an error, if any, comes as the
// final pair. It stops early when the request's context ends (yielding ctx.Err()); the
// engine frees the sequence within one decode step. Iterate it once.
func (s *Stream) Tokens() iter.Seq2[Token, error] {
	return func(yield func(Token, error) bool) {
		o := &s.j.out
		var buf []Token
		for {
			o.mu.Lock()
			buf, o.tokens = o.tokens, buf[:0]
			done, err := o.done, o.err
			o.mu.Unlock()
			for _, t := range buf {
				if !yield(t, nil) {
					return
				}
			}
			if done {
				if err != nil {
					yield(Token{}, err)
				}
				return
			}
			select {
			case <-o.signal:
			case <-s.j.ctx.Done():
				yield(Token{}, s.j.ctx.Err())
				return
			}
		}
	}
}

// Result returns the request's counts and timings; complete once Tokens has ended.
func (s *Stream) Result() Result {
	s.j.out.mu.Lock()
	defer s.j.out.mu.Unlock()
	r := s.j.out.result
	if !s.j.out.done {
		r.PromptTokens = len(s.j.prompt)
	}
	return r
}

// PromptTokens returns how many tokens the prompt has.
func (s *Stream) PromptTokens() int { return len(s.j.prompt) }
