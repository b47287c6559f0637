package serve

import (
	"errors"
	"fmt"
	"time"

	"github.com/ecotune/ecotune/bindings"
)

// Request is one generation for Engine.Submit.
type Request struct {
	// Prompt is the text to continue, special tokens written as text included; BOS is added
	// as llama.cpp's tools add it. Tokens, when set, is used instead.
	Prompt string
	Tokens []int32
	// Adapters is the adapter set: names loaded with LoadAdapter and their scales; empty is
	// the base model alone.
	Adapters []AdapterRef
	// MaxTokens is the most tokens to generate; 0 = until end of generation or a full context.
	MaxTokens int
	Sampler   bindings.SamplerOptions
	Stop      []string
	// Logprobs asks for the chosen token's log-probability and this many most likely
	// alternatives with each token; < 0 = none.
	Logprobs int
}

// AdapterRef names a loaded adapter and the factor its update is multiplied by.
type AdapterRef struct {
	Name  string
	Scale float32
}

// Token is one generated token.
type Token struct {
	ID int32
	// Text is the token's share of the output ("" while it may begin a stop string or ends
	// inside a UTF-8 character); concatenated over a stream it is the whole output.
	Text  string
	Piece string // the token's own text, as the vocabulary spells it out
	// Logprob and Top are set when Request.Logprobs ≥ 0: the natural log of the token's
	// probability under the model (before sampling's truncations) and the most likely tokens.
	Logprob float32
	Top     []TokenLogprob
}

// TokenLogprob is one candidate token with its log-probability.
type TokenLogprob struct {
	ID      int32
	Piece   string
	Logprob float32
}

// Finish reasons, as OpenAI's API names them.
const (
	FinishStop   = "stop"   // an end-of-generation token or a stop string
	FinishLength = "length" // MaxTokens, or the sequence's context is full
)

// Result is what a finished stream reports.
type Result struct {
	FinishReason     string
	PromptTokens     int
	CompletionTokens int
	Queued           time.Duration // waiting for a sequence slot
	PromptEval       time.Duration // from admission to the first token
	Eval             time.Duration // from the first token to the last
}

// ErrQueueFull reports that every slot is busy and the waiting queue is full; try later.
var ErrQueueFull = errors.New("serve: every slot is busy and the queue is full")

// ErrClosed reports a request to an engine that is shutting down.
var ErrClosed = errors.New("serve: the engine is shutting down")

// ErrUnknownAdapter is wrapped by errors about an adapter name nothing is loaded under.
var ErrUnknownAdapter = errors.New("no adapter is loaded under that name")

// PromptTooLongError reports a prompt that leaves no room to generate in a sequence.
type PromptTooLongError struct {
	Tokens, Context int
}

func (e *PromptTooLongError) Error() string {
	return fmt.Sprintf("the prompt has %d tokens but a sequence holds %d (the prompt and at least one generated token must fit)",
		e.Tokens, e.Context)
}

// InvalidRequestError reports a request field with a bad value.
type InvalidRequestError struct {
	Field, Msg string
	Err        error // the cause, when there is one (errors.Is reaches it)
}

func (e *InvalidRequestError) Error() string { return e.Field + ": " + e.Msg }

func (e *InvalidRequestError) Unwrap() error { return e.Err }
