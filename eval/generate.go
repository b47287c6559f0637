package eval

import (
	"context"
	"fmt"
	"strings"

	"github.com/ecotune/ecotune/bindings"
)

// GenerateOptions configures Generate.
type GenerateOptions struct {
	// MaxTokens is the most tokens generated per prompt; 0 means until an
	// end-of-generation token or a full sequence.
	MaxTokens int
	// Sampler picks tokens; the zero value is greedy. Every prompt gets its
	// own sampler seeded with Sampler.Seed, so a prompt's output does not
	// depend on which other prompts share its batch.
	Sampler bindings.SamplerOptions
	// Stop ends a generation before the first of these strings; the stop
	// string is not part of the text.
	Stop []string
	// Chat wraps each prompt as one user turn in the model's chat template
	// (with the assistant turn opened) before tokenizing.
	Chat bool
	// Parallel is how many prompts are decoded together as separate
	// sequences; 0 means the context's NSeqMax.
	Parallel int
}

// Finish reasons of a Generation.
const (
	FinishEOG     = "eog"     // the model produced an end-of-generation token
	FinishStop    = "stop"    // a stop string appeared
	FinishLength  = "length"  // MaxTokens were generated
	FinishContext = "context" // the sequence's share of the context is full
)

// Generation is the output for one prompt.
type Generation struct {
	// Text is the generated text, without the prompt or a stop string.
	Text string `json:"text"`
	// PromptTokens is the prompt's length in tokens, BOS included.
	PromptTokens int `json:"prompt_tokens"`
	// Tokens counts sampled tokens, an end-of-generation token excluded.
	Tokens int `json:"tokens"`
	// Finish says why generation ended (FinishEOG, FinishStop, ...).
	Finish string `json:"finish"`
}

// BatchContextOptions returns context options for Generate and ReferenceLoss with
// parallel sequences of up to seqLen tokens each: one KV buffer shared by all
// sequences (so a batch may mix any of them in one micro-batch) and room for
// parallel × seqLen tokens.
func BatchContextOptions(parallel, seqLen, threads int) bindings.ContextOptions {
	parallel = max(parallel, 1)
	return bindings.ContextOptions{
		NCtx:      parallel * seqLen,
		NBatch:    max(512, parallel),
		NSeqMax:   parallel,
		Threads:   threads,
		KVUnified: true,
		// The products of each prompt's tokens then do not depend on the prompts decoded
		// beside them. (Attention can still differ in rounding: in the shared KV buffer a
		// sequence's cells may lie in another order than alone, where serve's per-sequence
		// buffers keep it.)
		BatchInvariant: true,
	}
}

// slot is one sequence of the context and the prompt it is working on.
type slot struct {
	seq     int32
	prompt  int     // index into the prompts; -1 when free
	pending []int32 // tokens still to decode: the prompt's rest, or the last sampled token
	pos     int32   // position of pending[0]
	logitAt int     // batch index of this slot's output in the current batch, or -1
	smpl    *bindings.Sampler
	text    []byte
	gen     Generation
}

// Generate continues each prompt on c and returns one Generation per prompt,
// in order. Up to Parallel prompts are decoded at once as separate sequences
// of c: each step decodes one batch holding the next token of every running
// sequence plus prompt tokens of newly started ones, and a finished sequence's
// slot goes to the next prompt at once (continuous batching). With greedy or
// seeded sampling the outputs are those of generating each prompt alone with
// bindings.Generate on a fresh sequence. Each sequence may hold min(NCtxSeq,
// NCtx/Parallel) tokens, so sequences never crowd each other out of the KV
// memory. Generate clears c's memory before and after. goctx is checked before
// every decode.
func Generate(goctx context.Context, c *bindings.Context, prompts []string, opts GenerateOptions) ([]Generation, error) {
	if opts.MaxTokens < 0 {
		return nil, fmt.Errorf("eval: generate: MaxTokens %d is negative", opts.MaxTokens)
	}
	parallel := opts.Parallel
	if parallel == 0 {
		parallel = c.NSeqMax()
	}
	if parallel < 1 || parallel > c.NSeqMax() {
		return nil, fmt.Errorf("eval: generate: Parallel %d outside [1, %d], the context's NSeqMax", parallel, c.NSeqMax())
	}
	// The share of the memory each sequence may use depends on the requested
	// parallelism only, not on how many prompts there are, so a prompt's output
	// never depends on the size of the call.
	seqLimit := min(c.NCtxSeq(), c.NCtx()/parallel)
	parallel = min(parallel, max(len(prompts), 1))
	if c.NBatch() < parallel {
		return nil, fmt.Errorf("eval: generate: NBatch %d is below Parallel %d; one step needs a token per sequence", c.NBatch(), parallel)
	}
	m := c.Model()

	// Tokenize everything first so a bad prompt fails before any decoding.
	tokens := make([][]int32, len(prompts))
	for i, p := range prompts {
		if opts.Chat {
			var err error
			p, err = m.ApplyChatTemplate([]bindings.ChatMessage{{Role: "user", Content: p}}, true)
			if err != nil {
				return nil, fmt.Errorf("eval: generate: prompt %d: %w", i, err)
			}
		}
		// As bindings.Generate on an empty sequence: BOS added (once), special tokens parsed.
		ids, err := m.PromptTokens(p, true)
		if err != nil {
			return nil, fmt.Errorf("eval: generate: prompt %d: %w", i, err)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("eval: generate: prompt %d is empty", i)
		}
		if len(ids) > seqLimit {
			return nil, fmt.Errorf("eval: generate: prompt %d has %d tokens but a sequence holds %d (NCtx %d over %d parallel sequences): %w",
				i, len(ids), seqLimit, c.NCtx(), parallel, bindings.ErrKVCacheFull)
		}
		tokens[i] = ids
	}

	if err := c.ClearMemory(); err != nil {
		return nil, err
	}
	defer c.ClearMemory()
	batch, err := bindings.NewBatch(c.NBatch(), 1)
	if err != nil {
		return nil, err
	}
	defer batch.Close()

	slots := make([]*slot, parallel)
	for i := range slots {
		slots[i] = &slot{seq: int32(i), prompt: -1}
	}
	defer func() {
		for _, s := range slots {
			s.smpl.Close()
		}
	}()
	out := make([]Generation, len(prompts))
	next := 0 // the next prompt to start
	for {
		// Hand free slots the next prompts.
		for _, s := range slots {
			if s.prompt >= 0 || next >= len(prompts) {
				continue
			}
			if err := s.start(m, next, tokens[next], opts.Sampler); err != nil {
				return nil, fmt.Errorf("eval: generate: prompt %d: %w", next, err)
			}
			next++
		}
		// Fill the batch: every slot's pending tokens, prompt chunks as room allows.
		// Running sequences come first, so they always fit (NBatch ≥ Parallel).
		batch.Clear()
		for _, s := range slots {
			s.logitAt = -1
		}
		for _, prefill := range []bool{false, true} {
			for _, s := range slots {
				if s.prompt < 0 || (len(s.pending) > 1 || s.gen.Tokens == 0) != prefill {
					continue
				}
				n := min(len(s.pending), batch.Cap()-batch.Len())
				for i, t := range s.pending[:n] {
					last := i == n-1 && n == len(s.pending)
					if err := batch.Add(t, s.pos+int32(i), []int32{s.seq}, last); err != nil {
						return nil, err
					}
					if last {
						s.logitAt = batch.Len() - 1
					}
				}
				s.pending, s.pos = s.pending[n:], s.pos+int32(n)
			}
		}
		if batch.Len() == 0 {
			return out, nil // no slot busy and no prompt left
		}
		if err := goctx.Err(); err != nil {
			return nil, err
		}
		if err := c.Decode(batch); err != nil {
			return nil, fmt.Errorf("eval: generate: %w", err)
		}
		for _, s := range slots {
			if s.logitAt < 0 {
				continue
			}
			done, err := s.step(c, seqLimit, opts)
			if err != nil {
				return nil, fmt.Errorf("eval: generate: prompt %d: %w", s.prompt, err)
			}
			if done {
				out[s.prompt] = s.gen
				out[s.prompt].Text = string(s.text)
				if err := c.SeqRemove(s.seq, -1, -1); err != nil {
					return nil, err
				}
				s.prompt = -1
			}
		}
	}
}

// start puts prompt i (its tokens ids) on the slot with a fresh sampler that has seen the
// prompt, as bindings.Generate lets the repetition penalties see it.
func (s *slot) start(m *bindings.Model, i int, ids []int32, so bindings.SamplerOptions) error {
	s.smpl.Close()
	s.smpl = nil
	smpl, err := bindings.NewSampler(m, so)
	if err != nil {
		return err
	}
	s.smpl = smpl
	for _, t := range ids {
		if err := smpl.Accept(t); err != nil {
			return err
		}
	}
	s.prompt, s.pending, s.pos = i, ids, 0
	s.text = s.text[:0]
	s.gen = Generation{PromptTokens: len(ids)}
	return nil
}

// step samples the slot's next token from the last decode and reports whether its
// generation is finished; if not, the token becomes the slot's pending input.
func (s *slot) step(c *bindings.Context, seqLimit int, opts GenerateOptions) (bool, error) {
	m := c.Model()
	tok, err := s.smpl.Sample(c, s.logitAt)
	if err != nil {
		return false, err
	}
	if m.IsEOG(tok) {
		s.gen.Finish = FinishEOG
		return true, nil
	}
	piece, err := m.TokenToPiece(tok, false)
	if err != nil {
		return false, err
	}
	s.gen.Tokens++
	// Only the new piece's bytes and the longest stop string before them can
	// hold a stop string that was not there before.
	from := len(s.text)
	s.text = append(s.text, piece...)
	if cut, ok := findStop(s.text, from, opts.Stop); ok {
		s.text = s.text[:cut]
		s.gen.Finish = FinishStop
		return true, nil
	}
	switch {
	case opts.MaxTokens > 0 && s.gen.Tokens >= opts.MaxTokens:
		s.gen.Finish = FinishLength
		return true, nil
	case int(s.pos) >= seqLimit:
		// No room left to decode the token just sampled; it is the last one.
		s.gen.Finish = FinishContext
		return true, nil
	}
	s.pending = []int32{tok}
	return false, nil
}

// findStop returns where the earliest stop string in text starts, looking only at
// matches that end after byte from (earlier text was checked already).
func findStop(text []byte, from int, stops []string) (int, bool) {
	best := -1
	for _, stop := range stops {
		if stop == "" {
			continue
		}
		start := max(0, from-len(stop)+1)
		if i := strings.Index(string(text[start:]), stop); i >= 0 && (best < 0 || start+i < best) {
			best = start + i
		}
	}
	return best, best >= 0
}
