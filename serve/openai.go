package serve

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ecotune/ecotune/bindings"
)

// resolveModel turns a request's model name and llama-server style "lora" list into an
// adapter set: the base's name (or none) is the base alone, an adapter's name that adapter
// at its load-time scale; lora entries add adapters or override their scale.
func (s *Server) resolveModel(model string, lora []loraRef) ([]AdapterRef, error) {
	var refs []AdapterRef
	name := strings.TrimSuffix(model, ":latest") // Ollama clients add the default tag
	switch {
	case name == "" || name == s.e.Name():
	default:
		found := false
		for _, a := range s.e.Adapters() {
			if a.Name == name {
				refs, found = append(refs, AdapterRef{Name: a.Name, Scale: a.Scale}), true
			}
		}
		if !found {
			return nil, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "model_not_found", Param: "model",
				Message: fmt.Sprintf("the model %q does not exist; GET /v1/models lists the base and its adapters", model)}
		}
	}
	for i, l := range lora {
		ref := AdapterRef{Name: l.Name, Scale: 1}
		if l.Scale != nil {
			ref.Scale = *l.Scale
		}
		switch {
		case l.ID != nil && l.Name != "":
			return nil, badRequest(fmt.Sprintf("lora[%d]", i), "give an adapter's id or its name, not both")
		case l.ID != nil:
			n, ok := s.e.AdapterName(*l.ID)
			if !ok {
				return nil, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "model_not_found", Param: fmt.Sprintf("lora[%d].id", i),
					Message: fmt.Sprintf("no adapter has id %d; GET /v1/adapters lists them", *l.ID)}
			}
			ref.Name = n
		case l.Name == "":
			return nil, badRequest(fmt.Sprintf("lora[%d]", i), "an entry needs an id or a name")
		}
		if ref.Scale < -100 || ref.Scale > 100 {
			return nil, badRequest(fmt.Sprintf("lora[%d].scale", i), "scale %v is outside [-100, 100]", ref.Scale)
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

// buildRequest checks the sampling fields and turns them into an engine Request.
func (s *Server) buildRequest(f *samplingFields, maxTokens *int) (Request, error) {
	if f.N != nil && *f.N != 1 {
		return Request{}, badRequest("n", "n must be 1 (got %d): ask for more completions with more requests", *f.N)
	}
	for _, c := range []error{
		checkRange("temperature", f.Temperature, 0, 2),
		checkRange("top_p", f.TopP, 0, 1),
		checkRange("min_p", f.MinP, 0, 1),
		checkRange("top_k", f.TopK, 0, 1<<20),
		checkRange("max_tokens", maxTokens, 1, 1<<24),
		checkRange("presence_penalty", &f.PresencePenalty, -2, 2),
		checkRange("frequency_penalty", &f.FrequencyPenalty, -2, 2),
		checkRange("repetition_penalty", f.RepetitionPenalty, 0.01, 10),
		checkRange("repeat_penalty", f.RepeatPenalty, 0.01, 10),
	} {
		if c != nil {
			return Request{}, c
		}
	}
	adapters, err := s.resolveModel(f.Model, f.Lora)
	if err != nil {
		return Request{}, err
	}
	req := Request{Adapters: adapters, Stop: f.Stop, Logprobs: -1}
	if len(req.Stop) > 16 {
		return Request{}, badRequest("stop", "at most 16 stop strings (got %d)", len(req.Stop))
	}
	if maxTokens != nil {
		req.MaxTokens = *maxTokens
	}
	sm := bindings.SamplerOptions{Temperature: 1, Seed: bindings.RandomSeed, PresencePenalty: f.PresencePenalty, FrequencyPenalty: f.FrequencyPenalty}
	if f.Temperature != nil {
		sm.Temperature = *f.Temperature
	}
	if f.TopP != nil {
		sm.TopP = *f.TopP
	}
	if f.TopK != nil {
		sm.TopK = *f.TopK
	}
	if f.MinP != nil {
		sm.MinP = *f.MinP
	}
	if f.Seed != nil {
		sm.Seed = uint32(*f.Seed)
	}
	if f.RepetitionPenalty != nil {
		sm.RepeatPenalty = *f.RepetitionPenalty
	}
	if f.RepeatPenalty != nil {
		sm.RepeatPenalty = *f.RepeatPenalty
	}
	if f.ResponseFormat != nil {
		switch f.ResponseFormat.Type {
		case "text", "":
		case "json_object":
			sm.Grammar = bindings.JSONGrammar
		default:
			return Request{}, badRequest("response_format.type", "response_format %q is not supported (text or json_object)", f.ResponseFormat.Type)
		}
	}
	req.Sampler = sm
	return req, nil
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// chatCompletions serves POST /v1/chat/completions.
func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	var body chatRequest
	if err := decodeJSON(r, &body); err != nil {
		writeOpenAIError(w, err)
		return
	}
	maxTokens := body.MaxTokens
	if body.MaxCompletionTokens != nil {
		maxTokens = body.MaxCompletionTokens
	}
	req, err := s.buildRequest(&body.samplingFields, maxTokens)
	if err == nil {
		err = checkRange("top_logprobs", body.TopLogprobs, 0, 20)
	}
	if err == nil && len(body.Messages) == 0 {
		err = badRequest("messages", "messages must hold at least one message")
	}
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	if body.Logprobs {
		req.Logprobs = 0
		if body.TopLogprobs != nil {
			req.Logprobs = *body.TopLogprobs
		}
	}
	msgs := make([]bindings.ChatMessage, len(body.Messages))
	for i, m := range body.Messages {
		if m.Role == "" {
			writeOpenAIError(w, badRequest(fmt.Sprintf("messages[%d].role", i), "a message needs a role"))
			return
		}
		msgs[i] = bindings.ChatMessage{Role: m.Role, Content: string(m.Content)}
	}
	if req.Prompt, err = s.e.ChatPrompt(msgs); err != nil {
		writeOpenAIError(w, err)
		return
	}
	stream, err := s.e.Submit(r.Context(), req)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	rep := s.newReply(stream, "chatcmpl-", "chat.completion", body.Model)
	if !body.Stream {
		var text strings.Builder
		var lps []chatLogprob
		res, err := rep.obs.each(stream, func(tok Token) {
			text.WriteString(tok.Text)
			if req.Logprobs >= 0 {
				lps = append(lps, chatLogprobOf(tok))
			}
		})
		if err != nil {
			writeOpenAIError(w, err)
			return
		}
		choice := map[string]any{
			"index": 0, "message": map[string]any{"role": "assistant", "content": text.String()},
			"logprobs": nil, "finish_reason": res.FinishReason,
		}
		if req.Logprobs >= 0 {
			choice["logprobs"] = map[string]any{"content": nonNil(lps)}
		}
		writeJSON(w, http.StatusOK, rep.whole(choice, res))
		return
	}

	sse := newSSE(w)
	chunk := func(delta map[string]any, lp any, finish any) map[string]any {
		return rep.chunk(map[string]any{"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish})
	}
	sse.send(chunk(map[string]any{"role": "assistant", "content": ""}, nil, nil))
	res, err := rep.obs.each(stream, func(tok Token) {
		if tok.Text == "" && req.Logprobs < 0 {
			return
		}
		var lp any
		if req.Logprobs >= 0 {
			lp = map[string]any{"content": []chatLogprob{chatLogprobOf(tok)}}
		}
		sse.send(chunk(map[string]any{"content": tok.Text}, lp, nil))
	})
	if err != nil {
		sse.sendError(err)
		return
	}
	rep.end(sse, chunk(map[string]any{}, nil, res.FinishReason), res, body.StreamOptions)
}

// completions serves POST /v1/completions.
func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	var body completionRequest
	if err := decodeJSON(r, &body); err != nil {
		writeOpenAIError(w, err)
		return
	}
	req, err := s.buildRequest(&body.samplingFields, body.MaxTokens)
	if err == nil {
		err = checkRange("logprobs", body.Logprobs, 0, 20)
	}
	if err == nil && body.Prompt == nil {
		err = badRequest("prompt", "prompt is required")
	}
	if err == nil && body.Suffix != nil && *body.Suffix != "" {
		err = badRequest("suffix", "suffix (fill-in-the-middle) is not supported")
	}
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	if body.Logprobs != nil {
		req.Logprobs = *body.Logprobs
	}
	req.Prompt, req.Tokens = body.Prompt.text, body.Prompt.tokens
	stream, err := s.e.Submit(r.Context(), req)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	rep := s.newReply(stream, "cmpl-", "text_completion", body.Model)
	echo := ""
	if body.Echo {
		echo = req.Prompt
		if req.Tokens != nil {
			echo, _ = s.e.Model().Detokenize(req.Tokens, false, true)
		}
	}
	if !body.Stream {
		text := strings.Builder{}
		text.WriteString(echo)
		var lps *completionLogprobs
		if req.Logprobs >= 0 {
			lps = &completionLogprobs{}
		}
		res, err := rep.obs.each(stream, func(tok Token) {
			if lps != nil {
				lps.add(tok, text.Len())
			}
			text.WriteString(tok.Text)
		})
		if err != nil {
			writeOpenAIError(w, err)
			return
		}
		choice := map[string]any{"index": 0, "text": text.String(), "logprobs": nil, "finish_reason": res.FinishReason}
		if lps != nil {
			choice["logprobs"] = lps
		}
		writeJSON(w, http.StatusOK, rep.whole(choice, res))
		return
	}

	sse := newSSE(w)
	chunk := func(text string, lp any, finish any) map[string]any {
		return rep.chunk(map[string]any{"index": 0, "text": text, "logprobs": lp, "finish_reason": finish})
	}
	if echo != "" {
		sse.send(chunk(echo, nil, nil))
	}
	offset := len(echo)
	res, err := rep.obs.each(stream, func(tok Token) {
		if tok.Text == "" && req.Logprobs < 0 {
			return
		}
		var lp any
		if req.Logprobs >= 0 {
			l := &completionLogprobs{}
			l.add(tok, offset)
			lp = l
		}
		offset += len(tok.Text)
		sse.send(chunk(tok.Text, lp, nil))
	})
	if err != nil {
		sse.sendError(err)
		return
	}
	rep.end(sse, chunk("", nil, res.FinishReason), res, body.StreamOptions)
}

// models serves GET /v1/models: the base, then every adapter, parented to the base.
func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	created := s.e.Loaded().Unix()
	data := []any{map[string]any{"id": s.e.Name(), "object": "model", "created": created, "owned_by": "ecotune"}}
	for _, a := range s.e.Adapters() {
		data = append(data, map[string]any{
			"id": a.Name, "object": "model", "created": created, "owned_by": "ecotune",
			"parent": s.e.Name(), "root": a.Path,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// reply holds what every OpenAI response and chunk of one request repeats.
type reply struct {
	s                 *Server
	obs               *observation
	id, object, model string
	created           int64
	chunkObject       string
}

// newReply starts the response to a submitted request; model "" is the base's name.
func (s *Server) newReply(st *Stream, idPrefix, object, model string) *reply {
	if model == "" {
		model = s.e.Name()
	}
	chunkObject := object
	if object == "chat.completion" {
		chunkObject = "chat.completion.chunk" // completions chunks keep "text_completion"
	}
	return &reply{s: s, obs: s.metrics.observe(st), id: newID(idPrefix), object: object, chunkObject: chunkObject,
		model: model, created: time.Now().Unix()}
}

func (r *reply) envelope(object string) map[string]any {
	return map[string]any{"id": r.id, "object": object, "created": r.created, "model": r.model, "system_fingerprint": r.s.fingerprint()}
}

// whole is a non-streamed response with one choice.
func (r *reply) whole(choice map[string]any, res Result) map[string]any {
	m := r.envelope(r.object)
	m["choices"], m["usage"] = []any{choice}, usageOf(res)
	return m
}

// chunk is one streamed event with one choice.
func (r *reply) chunk(choice map[string]any) map[string]any {
	m := r.envelope(r.chunkObject)
	m["choices"] = []any{choice}
	return m
}

// end sends the finishing chunk, the usage chunk when the client asked for it, and [DONE].
func (r *reply) end(sse *sseWriter, finish map[string]any, res Result, opts *streamOptions) {
	sse.send(finish)
	if opts != nil && opts.IncludeUsage {
		m := r.envelope(r.chunkObject)
		m["choices"], m["usage"] = []any{}, usageOf(res)
		sse.send(m)
	}
	sse.done()
}

// fingerprint identifies the backend configuration, as OpenAI's system_fingerprint does.
func (s *Server) fingerprint() string { return "ecotune-" + s.opts.Version }

func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}
