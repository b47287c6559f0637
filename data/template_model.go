package data

import (
	"fmt"
	"strings"
)

// ModelTemplate renders with a model's own chat template. Because the
// templater returns only whole strings, segment boundaries are found by
// rendering prefixes: for an assistant turn k, the text of messages[:k]
// with the assistant prompt is everything before its content, and the text
// of messages[:k+1] adds the content and end-of-turn marker, which are
// trained on. The difference between successive renders is masked for
// other turns. This needs a template where rendering more turns only
// appends text; templates that rewrite earlier turns (for example ones
// that drop earlier reasoning) are reported as errors.
func ModelTemplate(ct ChatTemplater) Template { return modelTemplate{ct} }

type modelTemplate struct{ ct ChatTemplater }

func (modelTemplate) Name() string { return "model" }

func (t modelTemplate) Render(ex *Example) ([]Segment, error) {
	if ex.IsText() {
		return textSegments(ex), nil
	}
	msgs := ex.Turns()
	var s segmenter
	prev := ""
	extend := func(k int, text string, train bool) error {
		if !strings.HasPrefix(text, prev) {
			return fmt.Errorf("model template: rendering %d turns does not extend the rendering of the turns before; the template is not prefix-stable, use a built-in template", k)
		}
		// Model templates mix control tokens and content in one diff, so
		// every segment is parsed for special tokens, as Hugging Face does.
		s.add(text[len(prev):], train, true)
		prev = text
		return nil
	}
	for k, m := range msgs {
		if m.Role == RoleAssistant {
			prompt, err := t.ct.ApplyChatTemplate(msgs[:k], true)
			if err != nil {
				return nil, fmt.Errorf("model template: turns 0..%d with assistant prompt: %w", k-1, err)
			}
			if err := extend(k, prompt, false); err != nil {
				return nil, err
			}
		}
		full, err := t.ct.ApplyChatTemplate(msgs[:k+1], false)
		if err != nil {
			return nil, fmt.Errorf("model template: turns 0..%d: %w", k, err)
		}
		if err := extend(k+1, full, m.Role == RoleAssistant); err != nil {
			return nil, err
		}
	}
	return s, nil
}
