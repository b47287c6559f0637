//go:build cgo

package bindings

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
)

// Token is one generated token: its id and the text it adds to the output.
type Token struct {
	ID int32
	// Text is the token's share of the output. It is "" while the token's bytes end in an
	// unfinished UTF-8 character or may begin a stop string; those bytes come out with a
	// later token, so concatenating Text over a generation gives the whole output.
	Text string
}

// GenerateOptions configures Generate.
type GenerateOptions struct {
	MaxTokens int            // most tokens to generate; 0 = until end of generation or a full context
	Sampler   SamplerOptions // how each token is picked; the zero value is greedy
	Stop      []string       // generation ends before the first of these strings; it is not included
	Seq       int32          // the sequence to extend (0 by default); it needs Seq < NSeqMax
}

// Generate tokenizes prompt and streams the model's continuation of it on c. The prompt
// is tokenized as llama.cpp's tools do (special tokens parsed; BOS added when the sequence
// is empty), then decoded after whatever sequence opts.Seq already holds, so a second
// call continues the first. Generation ends at an end-of-generation token (not yielded
// unless it releases held-back text), a stop string, MaxTokens, or a full context. goctx
// is checked before every decode step, so cancelling it stops the stream within one step
// with goctx.Err(). Errors arrive as the final pair.
func Generate(goctx context.Context, c *Context, prompt string, opts GenerateOptions) iter.Seq2[Token, error] {
	return func(yield func(Token, error) bool) {
		_, maxPos, err := c.SeqPosRange(opts.Seq)
		if err != nil {
			yield(Token{}, err)
			return
		}
		tokens, err := c.model.PromptTokens(prompt, maxPos < 0)
		if err != nil {
			yield(Token{}, err)
			return
		}
		generateTokens(goctx, c, tokens, opts, yield)
	}
}

// PromptTokens tokenizes a prompt, special tokens written as text included; first adds
// the BOS the vocabulary wants at the start of a sequence. A prompt from a chat template
// often begins with the BOS text itself, and tokenizing it with BOS added would start
// the sequence with two (llama.cpp warns of this and keeps both); one is dropped.
func (m *Model) PromptTokens(prompt string, first bool) ([]int32, error) {
	tokens, err := m.Tokenize(prompt, first, true)
	if err != nil {
		return nil, err
	}
	if first && m.AddBOS() && len(tokens) >= 2 && tokens[0] == m.BOS() && tokens[1] == m.BOS() {
		tokens = tokens[1:]
	}
	return tokens, nil
}

// GenerateTokens is Generate for a prompt already tokenized (nothing is added to it).
func GenerateTokens(goctx context.Context, c *Context, prompt []int32, opts GenerateOptions) iter.Seq2[Token, error] {
	prompt = append([]int32(nil), prompt...) // the caller may reuse its slice while we iterate
	return func(yield func(Token, error) bool) {
		generateTokens(goctx, c, prompt, opts, yield)
	}
}

// GenerateText runs Generate and returns the whole output text.
func GenerateText(goctx context.Context, c *Context, prompt string, opts GenerateOptions) (string, error) {
	var sb strings.Builder
	for tok, err := range Generate(goctx, c, prompt, opts) {
		if err != nil {
			return sb.String(), err
		}
		sb.WriteString(tok.Text)
	}
	return sb.String(), nil
}

// errStop ends generateTokens' loop without an error.
var errStop = errors.New("stop")

// generateTokens is the decode–sample loop behind Generate.
func generateTokens(goctx context.Context, c *Context, prompt []int32, opts GenerateOptions, yield func(Token, error) bool) {
	fail := func(err error) { yield(Token{}, err) }
	if len(prompt) == 0 {
		fail(fmt.Errorf("bindings: generate: empty prompt"))
		return
	}
	if opts.MaxTokens < 0 {
		fail(fmt.Errorf("bindings: generate: MaxTokens %d is negative", opts.MaxTokens))
		return
	}
	m := c.model
	_, maxPos, err := c.SeqPosRange(opts.Seq)
	if err != nil {
		fail(err)
		return
	}
	pos := maxPos + 1
	if int(pos)+len(prompt) > c.nCtxSeq {
		fail(fmt.Errorf("bindings: generate: prompt of %d tokens after %d held does not fit the sequence's %d-token context: %w",
			len(prompt), pos, c.nCtxSeq, ErrKVCacheFull))
		return
	}

	smpl, err := NewSampler(m, opts.Sampler)
	if err != nil {
		fail(err)
		return
	}
	defer smpl.Close()
	// Let the repetition penalties see the prompt, as llama.cpp's tools do.
	for _, t := range prompt {
		if err := smpl.Accept(t); err != nil {
			fail(err)
			return
		}
	}

	batch, err := NewBatch(c.NBatch(), 1)
	if err != nil {
		fail(err)
		return
	}
	defer batch.Close()
	seq := []int32{opts.Seq}

	// decode feeds tokens at pos in NBatch-sized chunks, asking for the last one's logits.
	decode := func(tokens []int32) error {
		for len(tokens) > 0 {
			if err := goctx.Err(); err != nil {
				return err
			}
			n := min(len(tokens), batch.Cap())
			batch.Clear()
			for i, t := range tokens[:n] {
				if err := batch.Add(t, pos+int32(i), seq, i == n-1 && n == len(tokens)); err != nil {
					return err
				}
			}
			if err := c.Decode(batch); err != nil {
				return err
			}
			pos += int32(n)
			tokens = tokens[n:]
		}
		return nil
	}

	out := NewTextStream(opts.Stop)
	if err := decode(prompt); err != nil {
		fail(err)
		return
	}
	for n := 0; ; n++ {
		tok, err := smpl.Sample(c, -1)
		if err != nil {
			fail(err)
			return
		}
		if m.IsEOG(tok) {
			if rest := out.Flush(); rest != "" {
				yield(Token{ID: tok, Text: rest}, nil)
			}
			return
		}
		piece, err := m.TokenToPiece(tok, false)
		if err != nil {
			fail(err)
			return
		}
		// The last token is known before it is yielded, so held-back text rides with it.
		last := (opts.MaxTokens > 0 && n+1 >= opts.MaxTokens) || int(pos) >= c.nCtxSeq
		text, stopped := out.Push(piece)
		if last && !stopped {
			text += out.Flush()
		}
		if !yield(Token{ID: tok, Text: text}, nil) || stopped || last {
			return
		}
		if err := decode([]int32{tok}); err != nil {
			fail(err)
			return
		}
	}
}
