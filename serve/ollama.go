package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ecotune/ecotune/bindings"
)

// ollamaOptions are the "options" of Ollama's generate and chat requests that apply here.
type ollamaOptions struct {
	NumPredict       *int       `json:"num_predict"`
	Temperature      *float32   `json:"temperature"`
	TopK             *int       `json:"top_k"`
	TopP             *float32   `json:"top_p"`
	MinP             *float32   `json:"min_p"`
	Seed             *int64     `json:"seed"`
	Stop             stringList `json:"stop"`
	RepeatPenalty    *float32   `json:"repeat_penalty"`
	RepeatLastN      *int       `json:"repeat_last_n"`
	PresencePenalty  float32    `json:"presence_penalty"`
	FrequencyPenalty float32    `json:"frequency_penalty"`
	NumCtx           *int       `json:"num_ctx"`
}

// ollamaCommon are the fields /api/generate and /api/chat share.
type ollamaCommon struct {
	Model   string          `json:"model"`
	Stream  *bool           `json:"stream"` // Ollama streams unless told not to
	Format  json.RawMessage `json:"format"`
	Options ollamaOptions   `json:"options"`
}

// request turns Ollama's fields into an engine Request with Ollama's defaults
// (temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.1 over the last 64 tokens).
func (s *Server) ollamaRequest(c *ollamaCommon) (Request, error) {
	o := c.Options
	adapters, err := s.resolveModel(c.Model, nil)
	if err != nil {
		return Request{}, err
	}
	if c.Model == "" {
		return Request{}, badRequest("model", "model is required")
	}
	for _, e := range []error{
		checkRange("options.temperature", o.Temperature, 0, 100),
		checkRange("options.top_p", o.TopP, 0, 1),
		checkRange("options.min_p", o.MinP, 0, 1),
		checkRange("options.top_k", o.TopK, 0, 1<<20),
		checkRange("options.repeat_penalty", o.RepeatPenalty, 0, 10),
		checkRange("options.repeat_last_n", o.RepeatLastN, -1, 1<<20),
		checkRange("options.num_predict", o.NumPredict, -2, 1<<24),
	} {
		if e != nil {
			return Request{}, e
		}
	}
	if o.NumCtx != nil && *o.NumCtx > s.e.Options().Ctx {
		return Request{}, badRequest("options.num_ctx", "num_ctx %d exceeds the server's %d tokens a sequence (ecotune serve --ctx)", *o.NumCtx, s.e.Options().Ctx)
	}
	sm := bindings.SamplerOptions{Temperature: 0.8, TopK: 40, TopP: 0.9, RepeatPenalty: 1.1, Seed: bindings.RandomSeed,
		PresencePenalty: o.PresencePenalty, FrequencyPenalty: o.FrequencyPenalty}
	set := func(dst *float32, v *float32) {
		if v != nil {
			*dst = *v
		}
	}
	set(&sm.Temperature, o.Temperature)
	set(&sm.TopP, o.TopP)
	set(&sm.MinP, o.MinP)
	set(&sm.RepeatPenalty, o.RepeatPenalty)
	if o.TopK != nil {
		sm.TopK = *o.TopK
	}
	if o.RepeatLastN != nil {
		sm.RepeatLastN = *o.RepeatLastN
		if sm.RepeatLastN == 0 {
			sm.RepeatLastN = -1 // Ollama's 0 means no window; bindings' 0 means the default
		}
	}
	if o.Seed != nil {
		sm.Seed = uint32(*o.Seed)
	}
	if f := strings.TrimSpace(string(c.Format)); f != "" && f != "null" && f != `""` {
		if f != `"json"` {
			return Request{}, badRequest("format", "format must be \"json\" (JSON schemas are not supported)")
		}
		sm.Grammar = bindings.JSONGrammar
	}
	req := Request{Adapters: adapters, Sampler: sm, Stop: o.Stop, Logprobs: -1}
	if o.NumPredict != nil && *o.NumPredict > 0 {
		req.MaxTokens = *o.NumPredict
	}
	return req, nil
}

// ollamaGenerate serves POST /api/generate.
func (s *Server) ollamaGenerate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ollamaCommon
		Prompt  string  `json:"prompt"`
		System  string  `json:"system"`
		Raw     bool    `json:"raw"`
		Context []int32 `json:"context"`
		Images  []any   `json:"images"`
	}
	if err := decodeJSON(r, &body); err != nil {
		writeOllamaError(w, err)
		return
	}
	req, err := s.ollamaRequest(&body.ollamaCommon)
	if err == nil && len(body.Images) > 0 {
		err = badRequest("images", "images are not supported")
	}
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	if body.Prompt == "" && len(body.Context) == 0 {
		// Ollama loads the model and answers at once for an empty prompt.
		writeJSON(w, http.StatusOK, map[string]any{"model": body.Model, "created_at": now(), "response": "", "done": true, "done_reason": "load"})
		return
	}
	prompt := body.Prompt
	if !body.Raw && s.e.Model().ChatTemplate() != "" {
		var msgs []bindings.ChatMessage
		if body.System != "" {
			msgs = append(msgs, bindings.ChatMessage{Role: "system", Content: body.System})
		}
		msgs = append(msgs, bindings.ChatMessage{Role: "user", Content: body.Prompt})
		if prompt, err = s.e.ChatPrompt(msgs); err != nil {
			writeOllamaError(w, err)
			return
		}
	}
	if len(body.Context) > 0 {
		// A continuation: the earlier exchange's tokens, then this prompt's.
		more, err := s.e.Model().Tokenize(prompt, false, true)
		if err != nil {
			writeOllamaError(w, badRequest("prompt", "%v", err))
			return
		}
		req.Tokens = append(append([]int32(nil), body.Context...), more...)
	} else {
		req.Prompt = prompt
	}
	s.ollamaRun(w, r, req, body.Model, body.Stream, func(text string, done bool) map[string]any {
		return map[string]any{"response": text}
	})
}

// ollamaChat serves POST /api/chat.
func (s *Server) ollamaChat(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ollamaCommon
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
			Images  []any  `json:"images"`
		} `json:"messages"`
		Tools []any `json:"tools"`
	}
	if err := decodeJSON(r, &body); err != nil {
		writeOllamaError(w, err)
		return
	}
	req, err := s.ollamaRequest(&body.ollamaCommon)
	if err == nil && len(body.Tools) > 0 {
		err = badRequest("tools", "tool calling is not supported")
	}
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	if len(body.Messages) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"model": body.Model, "created_at": now(),
			"message": map[string]string{"role": "assistant", "content": ""}, "done": true, "done_reason": "load"})
		return
	}
	msgs := make([]bindings.ChatMessage, len(body.Messages))
	for i, m := range body.Messages {
		if m.Role == "" {
			writeOllamaError(w, badRequest(fmt.Sprintf("messages[%d].role", i), "a message needs a role"))
			return
		}
		if len(m.Images) > 0 {
			writeOllamaError(w, badRequest(fmt.Sprintf("messages[%d].images", i), "images are not supported"))
			return
		}
		msgs[i] = bindings.ChatMessage{Role: m.Role, Content: m.Content}
	}
	if req.Prompt, err = s.e.ChatPrompt(msgs); err != nil {
		writeOllamaError(w, err)
		return
	}
	s.ollamaRun(w, r, req, body.Model, body.Stream, func(text string, done bool) map[string]any {
		return map[string]any{"message": map[string]string{"role": "assistant", "content": text}}
	})
}

// ollamaRun submits req and writes Ollama's NDJSON stream, or one JSON object when stream
// is false; payload makes the route's own fields for a piece of text.
func (s *Server) ollamaRun(w http.ResponseWriter, r *http.Request, req Request, model string, stream *bool,
	payload func(text string, done bool) map[string]any) {
	start := time.Now()
	st, err := s.e.Submit(r.Context(), req)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	obs := s.metrics.observe(st)
	msg := func(text string, done bool) map[string]any {
		m := payload(text, done)
		m["model"], m["created_at"], m["done"] = model, now(), done
		return m
	}
	final := func(m map[string]any, res Result) map[string]any {
		m["done_reason"] = res.FinishReason
		m["total_duration"] = time.Since(start).Nanoseconds()
		m["load_duration"] = 0
		m["prompt_eval_count"] = res.PromptTokens
		m["prompt_eval_duration"] = (res.Queued + res.PromptEval).Nanoseconds()
		m["eval_count"] = res.CompletionTokens
		m["eval_duration"] = res.Eval.Nanoseconds()
		return m
	}
	if stream != nil && !*stream {
		var text strings.Builder
		res, err := obs.each(st, func(tok Token) { text.WriteString(tok.Text) })
		if err != nil {
			writeOllamaError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, final(msg(text.String(), true), res))
		return
	}
	nd := newNDJSON(w)
	res, err := obs.each(st, func(tok Token) {
		if tok.Text != "" {
			nd.send(msg(tok.Text, false))
		}
	})
	if err != nil {
		nd.send(map[string]string{"error": toAPIError(err).Message})
		return
	}
	nd.send(final(msg("", true), res))
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// ollamaModel is one entry of /api/tags.
func (s *Server) ollamaModels() []map[string]any {
	m := s.e.Model()
	details := s.ollamaDetails("")
	modified := s.e.Loaded().UTC().Format(time.RFC3339Nano)
	out := []map[string]any{{
		"name": s.e.Name(), "model": s.e.Name(), "modified_at": modified, "size": m.Size(), "digest": "", "details": details,
	}}
	for _, a := range s.e.Adapters() {
		out = append(out, map[string]any{
			"name": a.Name, "model": a.Name, "modified_at": modified, "size": m.Size(), "digest": "", "details": s.ollamaDetails(s.e.Name()),
		})
	}
	return out
}

func (s *Server) ollamaDetails(parent string) map[string]any {
	m := s.e.Model()
	desc := strings.Fields(m.Description())
	quant := ""
	if len(desc) > 0 {
		quant = desc[len(desc)-1]
	}
	return map[string]any{
		"parent_model": parent, "format": "gguf", "family": m.Arch(), "families": []string{m.Arch()},
		"parameter_size": paramSize(m.NParams()), "quantization_level": quant,
	}
}

// paramSize writes a parameter count as Ollama does: "260.1K", "7.2B".
func paramSize(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
}

// ollamaTags serves GET /api/tags.
func (s *Server) ollamaTags(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"models": s.ollamaModels()})
}

// ollamaPs serves GET /api/ps: everything here stays loaded.
func (s *Server) ollamaPs(w http.ResponseWriter, r *http.Request) {
	models := s.ollamaModels()
	for _, m := range models {
		m["expires_at"] = "0001-01-01T00:00:00Z"
		m["size_vram"] = 0
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": models})
}

// ollamaShow serves POST /api/show {model}.
func (s *Server) ollamaShow(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Model string `json:"model"`
		Name  string `json:"name"` // the older field
	}
	if err := decodeJSON(r, &body); err != nil {
		writeOllamaError(w, err)
		return
	}
	name := body.Model
	if name == "" {
		name = body.Name
	}
	adapters, err := s.resolveModel(name, nil)
	if err == nil && name == "" {
		err = badRequest("model", "model is required")
	}
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	m := s.e.Model()
	parent := ""
	modelfile := "FROM " + m.Path() + "\n"
	if len(adapters) > 0 {
		parent = s.e.Name()
		for _, a := range s.e.Adapters() {
			if a.Name == adapters[0].Name {
				modelfile += "ADAPTER " + a.Path + "\n"
			}
		}
	}
	info := map[string]any{}
	for k, v := range m.Metadata() {
		if !strings.HasPrefix(k, "tokenizer.ggml.") { // the vocabulary would be megabytes
			info[k] = v
		}
	}
	info["general.parameter_count"] = m.NParams()
	writeJSON(w, http.StatusOK, map[string]any{
		"modelfile": modelfile, "parameters": "", "template": m.ChatTemplate(), "details": s.ollamaDetails(parent),
		"model_info": info, "capabilities": []string{"completion"}, "modified_at": s.e.Loaded().UTC().Format(time.RFC3339Nano),
	})
}

// ollamaVersion serves GET /api/version.
func (s *Server) ollamaVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": s.opts.Version})
}
