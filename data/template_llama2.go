package data

import "fmt"

// llama2Template is Llama 2 chat: each exchange is
// <s>[INST] user [/INST] assistant </s>, the system prompt wrapped in
// <<SYS>> inside the first [INST]. The first <s> is the BOS that Encode
// adds; later ones are rendered. Turns must alternate user/assistant, as
// Meta's reference code requires.
type llama2Template struct{ bos, eos string }

func (llama2Template) Name() string { return "llama2" }

func (t llama2Template) Render(ex *Example) ([]Segment, error) {
	if ex.IsText() {
		return textSegments(ex), nil
	}
	var s segmenter
	msgs := ex.Turns()
	system := ""
	if len(msgs) > 0 && msgs[0].Role == RoleSystem {
		system = msgs[0].Content
		msgs = msgs[1:]
	}
	for i, m := range msgs {
		want := RoleUser
		if i%2 == 1 {
			want = RoleAssistant
		}
		if m.Role != want {
			return nil, fmt.Errorf("llama2 template: turn %d is %s, want %s (turns must alternate user/assistant after one optional system turn)", i, m.Role, want)
		}
		if m.Role == RoleUser {
			if i > 0 {
				s.add(t.bos, false, true)
			}
			s.add("[INST] ", false, true)
			if i == 0 && system != "" {
				s.add("<<SYS>>\n", false, true)
				s.add(system, false, false)
				s.add("\n<</SYS>>\n\n", false, true)
			}
			s.add(m.Content, false, false)
			s.add(" [/INST]", false, true)
			continue
		}
		s.add(" ", false, true)
		s.add(m.Content, true, false)
		s.add(" "+t.eos, true, true)
	}
	return s, nil
}
