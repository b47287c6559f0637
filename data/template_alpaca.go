package data

import "fmt"

// Alpaca's preambles, as in the Stanford Alpaca repository's prompt.
const (
	alpacaPreamble      = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
	alpacaPreambleInput = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n"
)

// alpacaTemplate renders ### Instruction / ### Input / ### Response
// sections. A system turn replaces the preamble; further exchanges repeat
// the Instruction and Response sections.
type alpacaTemplate struct{ eos string }

func (alpacaTemplate) Name() string { return "alpaca" }

func (t alpacaTemplate) Render(ex *Example) ([]Segment, error) {
	if ex.IsText() {
		return textSegments(ex), nil
	}
	var s segmenter
	msgs := ex.Messages
	switch {
	case len(msgs) > 0 && msgs[0].Role == RoleSystem:
		s.add(msgs[0].Content, false, false)
		s.add("\n\n", false, true)
		msgs = msgs[1:]
	case ex.Input != "":
		s.add(alpacaPreambleInput, false, true)
	default:
		s.add(alpacaPreamble, false, true)
	}
	firstUser := true
	answered := true
	for i, m := range msgs {
		switch m.Role {
		case RoleUser:
			if !answered {
				return nil, fmt.Errorf("alpaca template: two user turns in a row at turn %d", i)
			}
			if !firstUser {
				s.add("\n\n", false, true)
			}
			s.add("### Instruction:\n", false, true)
			s.add(m.Content, false, false)
			s.add("\n\n", false, true)
			if firstUser && ex.Input != "" {
				s.add("### Input:\n", false, true)
				s.add(ex.Input, false, false)
				s.add("\n\n", false, true)
			}
			s.add("### Response:\n", false, true)
			firstUser, answered = false, false
		case RoleAssistant:
			if answered {
				return nil, fmt.Errorf("alpaca template: assistant turn %d does not follow an instruction", i)
			}
			s.add(m.Content, true, false)
			s.add(t.eos, true, true)
			answered = true
		default:
			return nil, fmt.Errorf("alpaca template: a system turn is only allowed first (turn %d)", i)
		}
	}
	return s, nil
}
