package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/serve"
)

// result is one output line.
type result struct {
	ID               json.RawMessage `json:"id"`
	Text             string          `json:"text"`
	FinishReason     string          `json:"finish_reason"`
	PromptTokens     int             `json:"prompt_tokens"`
	CompletionTokens int             `json:"completion_tokens"`
}

// generateAll runs every item, at most o.jobs at once, and returns the results in input
// order. The first failure cancels the rest and is returned as "FILE:LINE: ...".
func generateAll(ctx context.Context, e *serve.Engine, items []item, o options) ([]result, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	results := make([]result, len(items))
	// The engine decodes what it has admitted together, so keeping more requests in
	// flight than it has slots keeps every slot busy; the bound keeps memory flat for
	// files of any length.
	sem := make(chan struct{}, o.jobs)
	var wg sync.WaitGroup
submit:
	for i, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break submit
		}
		wg.Go(func() {
			defer func() { <-sem }()
			r, err := generate(ctx, e, it, o)
			if err != nil {
				cancel(fmt.Errorf("%s:%d: %w", o.input, it.line, err))
				return
			}
			results[i] = r
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, errors.New("batch: interrupted")
		}
		return nil, err
	}
	return results, nil
}

// generate runs one item to its end.
func generate(ctx context.Context, e *serve.Engine, it item, o options) (result, error) {
	req := serve.Request{
		Prompt:    it.prompt,
		MaxTokens: o.maxTokens,
		Sampler:   bindings.SamplerOptions{Temperature: float32(o.temp), Seed: bindings.RandomSeed},
		Logprobs:  -1,
	}
	if it.maxTokens != nil {
		req.MaxTokens = *it.maxTokens
	}
	if it.adapter != "" {
		req.Adapters = []serve.AdapterRef{{Name: it.adapter, Scale: 1}}
	}
	text, r, err := e.Generate(ctx, req)
	if err != nil {
		return result{}, err
	}
	return result{ID: it.id, Text: text, FinishReason: r.FinishReason, PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens}, nil
}
