package serve

import (
	"encoding/json"
	"strings"
)

// stringList is a JSON string or array of strings (OpenAI's "stop").
type stringList []string

func (s *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return badRequest("stop", "stop must be a string or an array of strings")
	}
	*s = many
	return nil
}

// messageContent is a chat message's content: a string or an array of parts, of which
// text parts are joined.
type messageContent string

func (c *messageContent) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*c = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*c = messageContent(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return badRequest("messages", "a message's content must be a string or an array of content parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return badRequest("messages", "content part type %q is not supported (text only)", p.Type)
		}
		sb.WriteString(p.Text)
	}
	*c = messageContent(sb.String())
	return nil
}

// promptInput is the completions prompt: a string, an array of one string, or token ids.
type promptInput struct {
	text   string
	tokens []int32
}

func (p *promptInput) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &p.text); err == nil {
		return nil
	}
	var texts []string
	if err := json.Unmarshal(b, &texts); err == nil {
		if len(texts) != 1 {
			return badRequest("prompt", "an array prompt must hold exactly one string (got %d); send one request per prompt", len(texts))
		}
		p.text = texts[0]
		return nil
	}
	if err := json.Unmarshal(b, &p.tokens); err == nil {
		if p.tokens == nil {
			p.tokens = []int32{}
		}
		return nil
	}
	return badRequest("prompt", "prompt must be a string, an array of one string, or an array of token ids")
}

// loraRef is an entry of llama-server's "lora" field: an adapter by id or name, and a scale.
type loraRef struct {
	ID    *int     `json:"id"`
	Name  string   `json:"name"`
	Scale *float32 `json:"scale"`
}

// samplingFields are the OpenAI (and llama-server, vLLM) sampling fields both endpoints take.
type samplingFields struct {
	Model             string         `json:"model"`
	MaxTokens         *int           `json:"max_tokens"`
	Temperature       *float32       `json:"temperature"`
	TopP              *float32       `json:"top_p"`
	TopK              *int           `json:"top_k"`
	MinP              *float32       `json:"min_p"`
	Seed              *int64         `json:"seed"`
	Stop              stringList     `json:"stop"`
	PresencePenalty   float32        `json:"presence_penalty"`
	FrequencyPenalty  float32        `json:"frequency_penalty"`
	RepetitionPenalty *float32       `json:"repetition_penalty"`
	RepeatPenalty     *float32       `json:"repeat_penalty"`
	N                 *int           `json:"n"`
	Stream            bool           `json:"stream"`
	StreamOptions     *streamOptions `json:"stream_options"`
	ResponseFormat    *struct {
		Type string `json:"type"`
	} `json:"response_format"`
	Lora []loraRef `json:"lora"`
}

// streamOptions is OpenAI's stream_options.
type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// chatRequest is POST /v1/chat/completions.
type chatRequest struct {
	samplingFields
	Messages []struct {
		Role    string         `json:"role"`
		Content messageContent `json:"content"`
	} `json:"messages"`
	MaxCompletionTokens *int `json:"max_completion_tokens"`
	Logprobs            bool `json:"logprobs"`
	TopLogprobs         *int `json:"top_logprobs"`
}

// completionRequest is POST /v1/completions.
type completionRequest struct {
	samplingFields
	Prompt   *promptInput `json:"prompt"`
	Logprobs *int         `json:"logprobs"`
	Echo     bool         `json:"echo"`
	Suffix   *string      `json:"suffix"`
}

// usage is OpenAI's token accounting.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usageOf(r Result) *usage {
	return &usage{PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens, TotalTokens: r.PromptTokens + r.CompletionTokens}
}

// chatLogprob is one entry of a chat choice's logprobs.content.
type chatLogprob struct {
	Token       string        `json:"token"`
	Logprob     float32       `json:"logprob"`
	Bytes       []int         `json:"bytes"`
	TopLogprobs []chatLogprob `json:"top_logprobs"`
}

func chatLogprobOf(t Token) chatLogprob {
	lp := chatLogprob{Token: t.Piece, Logprob: t.Logprob, Bytes: bytesOf(t.Piece), TopLogprobs: []chatLogprob{}}
	for _, alt := range t.Top {
		lp.TopLogprobs = append(lp.TopLogprobs, chatLogprob{Token: alt.Piece, Logprob: alt.Logprob, Bytes: bytesOf(alt.Piece)})
	}
	return lp
}

func bytesOf(s string) []int {
	out := make([]int, len(s))
	for i := range len(s) {
		out[i] = int(s[i])
	}
	return out
}

// completionLogprobs is a completions choice's logprobs (the legacy layout).
type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float32            `json:"token_logprobs"`
	TopLogprobs   []map[string]float32 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

func (c *completionLogprobs) add(t Token, offset int) {
	c.Tokens = append(c.Tokens, t.Piece)
	c.TokenLogprobs = append(c.TokenLogprobs, t.Logprob)
	top := map[string]float32{}
	for _, alt := range t.Top {
		if _, dup := top[alt.Piece]; !dup {
			top[alt.Piece] = alt.Logprob
		}
	}
	c.TopLogprobs = append(c.TopLogprobs, top)
	c.TextOffset = append(c.TextOffset, offset)
}

func checkRange[T int | float32](field string, v *T, lo, hi T) error {
	if v != nil && (*v < lo || *v > hi) {
		return badRequest(field, "%s must be between %v and %v (got %v)", field, lo, hi, *v)
	}
	return nil
}
