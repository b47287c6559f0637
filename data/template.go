package data

import (
	"fmt"
	"strings"
)

// Segment is a piece of rendered text and its part in training: Train
// segments are the tokens the loss is computed on (assistant content and
// its end-of-turn marker); the rest (system and user turns, template
// scaffolding) is masked. Special marks scaffolding that holds control
// tokens such as <|im_start|>, to be tokenized with special-token parsing;
// content is tokenized without it, so a user who types "<|im_end|>" cannot
// end a turn.
type Segment struct {
	Text    string `json:"text"`
	Train   bool   `json:"train"`
	Special bool   `json:"special,omitempty"`
}

// Template renders an Example into segments. Templates never render the
// leading BOS token: Encode adds it (EncodeOptions.AddBOS), so it is added
// exactly once whatever the template.
type Template interface {
	// Name is the template's name as given to --template.
	Name() string
	// Render returns the example's text as segments, in order.
	Render(ex *Example) ([]Segment, error)
}

// ChatTemplater renders a conversation with a model's own chat template;
// the cgo bindings package implements it with llama.cpp's template engine.
// addAssistantPrompt appends the header that opens an assistant turn.
type ChatTemplater interface {
	ApplyChatTemplate(msgs []Message, addAssistantPrompt bool) (string, error)
}

// TemplateOptions tune the built-in templates for a model's vocabulary.
type TemplateOptions struct {
	BOS string `json:"bos"` // text of the BOS token between Llama 2 turns (default "<s>")
	EOS string `json:"eos"` // end-of-answer text for alpaca, llama2 and phi2 (defaults "</s>", "</s>", "<|endoftext|>")
}

// TemplateNames lists the names TemplateByName accepts.
func TemplateNames() []string {
	return []string{"alpaca", "chatml", "llama2", "llama3", "phi2", "phi3", "model"}
}

// TemplateByName returns the named template. "model" renders with the
// model's own chat template through ct, which must then be non-nil.
func TemplateByName(name string, opts TemplateOptions, ct ChatTemplater) (Template, error) {
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	switch strings.ToLower(name) {
	case "alpaca":
		return alpacaTemplate{eos: or(opts.EOS, "</s>")}, nil
	case "chatml":
		return &turnTemplate{
			name:  "chatml",
			open:  roleText{"<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n"},
			close: roleText{"<|im_end|>\n", "<|im_end|>\n", "<|im_end|>"},
			after: "\n",
		}, nil
	case "llama2":
		return llama2Template{bos: or(opts.BOS, "<s>"), eos: or(opts.EOS, "</s>")}, nil
	case "llama3":
		return &turnTemplate{
			name: "llama3",
			open: roleText{
				"<|start_header_id|>system<|end_header_id|>\n\n",
				"<|start_header_id|>user<|end_header_id|>\n\n",
				"<|start_header_id|>assistant<|end_header_id|>\n\n",
			},
			close: roleText{"<|eot_id|>", "<|eot_id|>", "<|eot_id|>"},
		}, nil
	case "phi2":
		// Phi-2 has no chat format of its own; its model card's QA format
		// is "Instruct: ...\nOutput: ...". EOS ends each answer so the
		// model learns to stop.
		return &turnTemplate{
			name:  "phi2",
			open:  roleText{"", "Instruct: ", "Output: "},
			close: roleText{"\n", "\n", or(opts.EOS, "<|endoftext|>")},
			after: "\n",
		}, nil
	case "phi3":
		return &turnTemplate{
			name:  "phi3",
			open:  roleText{"<|system|>\n", "<|user|>\n", "<|assistant|>\n"},
			close: roleText{"<|end|>\n", "<|end|>\n", "<|end|>"},
			after: "\n",
		}, nil
	case "model":
		if ct == nil {
			return nil, fmt.Errorf("template %q needs the model's chat template: load a model (none was given)", name)
		}
		return ModelTemplate(ct), nil
	}
	return nil, fmt.Errorf("unknown template %q (want one of %s)", name, strings.Join(TemplateNames(), ", "))
}

// roleText holds one string per role: system, user, assistant.
type roleText [3]string

func (r roleText) of(role Role) string {
	switch role {
	case RoleSystem:
		return r[0]
	case RoleUser:
		return r[1]
	}
	return r[2]
}

// segmenter builds a segment list, merging nothing: Encode decides merging.
type segmenter []Segment

func (s *segmenter) add(text string, train, special bool) {
	if text != "" {
		*s = append(*s, Segment{Text: text, Train: train, Special: special})
	}
}

// textSegments is how every template renders raw text: all of it is trained on.
func textSegments(ex *Example) []Segment {
	return []Segment{{Text: ex.Text, Train: true}}
}

// turnTemplate is a template where each turn is open + content + close:
// ChatML, Llama 3, Phi-2 and Phi-3. The assistant's close is its
// end-of-turn marker and is trained on, so the model learns to stop; after
// is masked text following it.
type turnTemplate struct {
	name        string
	open, close roleText
	after       string
}

func (t *turnTemplate) Name() string { return t.name }

func (t *turnTemplate) Render(ex *Example) ([]Segment, error) {
	if ex.IsText() {
		return textSegments(ex), nil
	}
	turns := ex.Turns()
	s := make(segmenter, 0, 4*len(turns)) // open, content, close, after: one allocation
	for _, m := range turns {
		train := m.Role == RoleAssistant
		s.add(t.open.of(m.Role), false, true)
		s.add(m.Content, train, false)
		s.add(t.close.of(m.Role), train, true)
		if train {
			s.add(t.after, false, true)
		}
	}
	return s, nil
}

// Rendered joins segments into the full text.
func Rendered(segs []Segment) string {
	n := 0
	for _, s := range segs {
		n += len(s.Text)
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range segs {
		b.WriteString(s.Text)
	}
	return b.String()
}
