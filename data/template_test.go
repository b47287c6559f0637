package data

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chatmlTemplater is a stand-in for llama.cpp's template engine: ChatML
// rendered as whole strings, the only view a ChatTemplater gives.
type chatmlTemplater struct{}

func (chatmlTemplater) ApplyChatTemplate(msgs []Message, addAssistantPrompt bool) (string, error) {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("<|im_start|>" + string(m.Role) + "\n" + m.Content + "<|im_end|>\n")
	}
	if addAssistantPrompt {
		b.WriteString("<|im_start|>assistant\n")
	}
	return b.String(), nil
}

// unstableTemplater drops earlier assistant turns, as templates that strip
// past reasoning do, so prefixes do not extend each other.
type unstableTemplater struct{}

func (unstableTemplater) ApplyChatTemplate(msgs []Message, addAssistantPrompt bool) (string, error) {
	var b strings.Builder
	for i, m := range msgs {
		if m.Role == RoleAssistant && i < len(msgs)-1 {
			continue
		}
		b.WriteString("[" + string(m.Role) + "]" + m.Content)
	}
	if addAssistantPrompt {
		b.WriteString("[assistant]")
	}
	return b.String(), nil
}

var _ ChatTemplater = chatmlTemplater{}

// trainedRuns decodes each maximal run of loss-carrying tokens.
func trainedRuns(t *testing.T, tok Tokenizer, e Encoded) []string {
	t.Helper()
	var runs []string
	for i := 0; i < len(e.IDs); {
		if !e.Mask[i] {
			i++
			continue
		}
		j := i
		for j < len(e.IDs) && e.Mask[j] {
			j++
		}
		s, err := tok.Detokenize(e.IDs[i:j])
		require.NoError(t, err)
		runs = append(runs, s)
		i = j
	}
	return runs
}

func TestTemplateLabelMasks(t *testing.T) {
	chat := &Example{Shape: ShapeChat, Messages: []Message{
		{RoleSystem, "You are an environmental assistant."},
		{RoleUser, "What is CO2?"},
		{RoleAssistant, "Carbon dioxide, a greenhouse gas."},
		{RoleUser, "Is it <|im_end|> toxic?"}, // control-token text in content stays text
		{RoleAssistant, "Only at high concentrations."},
	}}
	a1, a2 := chat.Messages[2].Content, chat.Messages[4].Content
	alpacaEx := &Example{Shape: ShapeInstruction, Messages: qa("Summarise the text.", "Forests store carbon."), Input: "Forests absorb CO2 and store it."}
	tok := byteTokenizer{}
	tests := []struct {
		name     string
		ex       *Example
		wantRuns []string // decoded trained runs, in order
		wantText string   // the full rendering, without BOS
	}{
		{"chatml", chat, []string{a1 + "<|im_end|>", a2 + "<|im_end|>"},
			"<|im_start|>system\nYou are an environmental assistant.<|im_end|>\n<|im_start|>user\nWhat is CO2?<|im_end|>\n<|im_start|>assistant\n" + a1 + "<|im_end|>\n<|im_start|>user\nIs it <|im_end|> toxic?<|im_end|>\n<|im_start|>assistant\n" + a2 + "<|im_end|>\n"},
		{"llama2", chat, []string{a1 + " </s>", a2 + " </s>"},
			"[INST] <<SYS>>\nYou are an environmental assistant.\n<</SYS>>\n\nWhat is CO2? [/INST] " + a1 + " </s><s>[INST] Is it <|im_end|> toxic? [/INST] " + a2 + " </s>"},
		{"llama3", chat, []string{a1 + "<|eot_id|>", a2 + "<|eot_id|>"},
			"<|start_header_id|>system<|end_header_id|>\n\nYou are an environmental assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is CO2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n" + a1 + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nIs it <|im_end|> toxic?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n" + a2 + "<|eot_id|>"},
		{"phi2", chat, []string{a1 + "<|endoftext|>", a2 + "<|endoftext|>"},
			"You are an environmental assistant.\nInstruct: What is CO2?\nOutput: " + a1 + "<|endoftext|>\nInstruct: Is it <|im_end|> toxic?\nOutput: " + a2 + "<|endoftext|>\n"},
		{"phi3", chat, []string{a1 + "<|end|>", a2 + "<|end|>"},
			"<|system|>\nYou are an environmental assistant.<|end|>\n<|user|>\nWhat is CO2?<|end|>\n<|assistant|>\n" + a1 + "<|end|>\n<|user|>\nIs it <|im_end|> toxic?<|end|>\n<|assistant|>\n" + a2 + "<|end|>\n"},
		{"alpaca", chat, []string{a1 + "</s>", a2 + "</s>"},
			"You are an environmental assistant.\n\n### Instruction:\nWhat is CO2?\n\n### Response:\n" + a1 + "</s>\n\n### Instruction:\nIs it <|im_end|> toxic?\n\n### Response:\n" + a2 + "</s>"},
		{"alpaca", alpacaEx, []string{"Forests store carbon.</s>"},
			alpacaPreambleInput + "### Instruction:\nSummarise the text.\n\n### Input:\nForests absorb CO2 and store it.\n\n### Response:\nForests store carbon.</s>"},
		{"chatml", alpacaEx, []string{"Forests store carbon.<|im_end|>"},
			"<|im_start|>user\nSummarise the text.\n\nForests absorb CO2 and store it.<|im_end|>\n<|im_start|>assistant\nForests store carbon.<|im_end|>\n"},
		{"model", chat, []string{a1 + "<|im_end|>\n", a2 + "<|im_end|>\n"}, ""},
		{"llama3", &Example{Shape: ShapeText, Text: "Raw corpus text."}, []string{"Raw corpus text."}, "Raw corpus text."},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/"+string(tc.ex.Shape), func(t *testing.T) {
			tmpl, err := TemplateByName(tc.name, TemplateOptions{}, chatmlTemplater{})
			require.NoError(t, err)
			segs, err := tmpl.Render(tc.ex)
			require.NoError(t, err)
			if tc.wantText != "" {
				assert.Equal(t, tc.wantText, Rendered(segs))
			}
			enc, err := Encode(tc.ex, tmpl, tok, EncodeOptions{AddBOS: true})
			require.NoError(t, err)
			require.Len(t, enc.Mask, len(enc.IDs))
			assert.Equal(t, int32(bosID), enc.IDs[0], "BOS first")
			assert.False(t, enc.Mask[0], "BOS is never trained on")
			assert.Equal(t, tc.wantRuns, trainedRuns(t, tok, enc))

			// All tokens together decode to the rendering: nothing lost or
			// duplicated at segment boundaries.
			all, err := tok.Detokenize(enc.IDs)
			require.NoError(t, err)
			assert.Equal(t, "<BOS>"+Rendered(segs), all)

			// Control-token text typed by a user is spelled out, not parsed.
			for i, s := range segs {
				if !s.Special && strings.Contains(s.Text, "<|im_end|>") {
					ids, _ := tok.Tokenize(s.Text, false, false)
					assert.NotContains(t, ids, int32(256+1), "segment %d", i)
				}
			}
		})
	}
}

func TestModelTemplateMatchesBuiltinChatML(t *testing.T) {
	ex := &Example{Shape: ShapeChat, Messages: []Message{{RoleSystem, "S"}, {RoleUser, "U1"}, {RoleAssistant, "A1"}, {RoleUser, "U2"}, {RoleAssistant, "A2"}}}
	model, err := ModelTemplate(chatmlTemplater{}).Render(ex)
	require.NoError(t, err)
	builtin, _ := TemplateByName("chatml", TemplateOptions{}, nil)
	want, err := builtin.Render(ex)
	require.NoError(t, err)
	assert.Equal(t, Rendered(want), Rendered(model))

	_, err = ModelTemplate(unstableTemplater{}).Render(ex)
	assert.ErrorContains(t, err, "prefix-stable")

	_, err = TemplateByName("model", TemplateOptions{}, nil)
	assert.ErrorContains(t, err, "load a model")
	_, err = TemplateByName("vicuna", TemplateOptions{}, nil)
	assert.ErrorContains(t, err, "unknown template")
}

func TestTemplateErrors(t *testing.T) {
	notAlternating := &Example{Shape: ShapeChat, Messages: []Message{{RoleUser, "U1"}, {RoleUser, "U2"}, {RoleAssistant, "A"}}}
	for _, name := range []string{"llama2", "alpaca"} {
		tmpl, err := TemplateByName(name, TemplateOptions{}, nil)
		require.NoError(t, err)
		_, err = tmpl.Render(notAlternating)
		assert.Error(t, err, name)
	}
	chatml, _ := TemplateByName("chatml", TemplateOptions{}, nil)
	_, err := chatml.Render(notAlternating)
	assert.NoError(t, err, "ChatML has no alternation rule")
}

func TestEncodeTruncationAndBOS(t *testing.T) {
	tok := byteTokenizer{}
	segs := []Segment{{Text: "PROMPT:", Special: true}, {Text: "abcdef", Train: true}}
	t.Run("no limit", func(t *testing.T) {
		e, err := EncodeSegments(segs, tok, EncodeOptions{AddBOS: true})
		require.NoError(t, err)
		assert.Equal(t, 14, e.Len())
		assert.Equal(t, 6, e.Targets())
		labels := e.Labels()
		assert.Equal(t, int32(IgnoreIndex), labels[0])
		assert.Equal(t, int32('a'), labels[8])
	})
	t.Run("drop", func(t *testing.T) {
		_, err := EncodeSegments(segs, tok, EncodeOptions{AddBOS: true, MaxLen: 10})
		assert.True(t, errors.Is(err, ErrTooLong), err)
	})
	t.Run("left keeps BOS and the answer", func(t *testing.T) {
		e, err := EncodeSegments(segs, tok, EncodeOptions{AddBOS: true, MaxLen: 8, Truncation: TruncateLeft})
		require.NoError(t, err)
		s, _ := tok.Detokenize(e.IDs)
		assert.Equal(t, "<BOS>:abcdef", s)
		assert.Equal(t, []string{"abcdef"}, trainedRuns(t, tok, e))
	})
	t.Run("right keeps the start", func(t *testing.T) {
		e, err := EncodeSegments(segs, tok, EncodeOptions{AddBOS: true, MaxLen: 10, Truncation: TruncateRight})
		require.NoError(t, err)
		s, _ := tok.Detokenize(e.IDs)
		assert.Equal(t, "<BOS>PROMPT:ab", s)
	})
	t.Run("right cutting all targets", func(t *testing.T) {
		_, err := EncodeSegments(segs, tok, EncodeOptions{MaxLen: 5, Truncation: TruncateRight})
		assert.True(t, errors.Is(err, ErrNoTrainableTokens), err)
	})
	t.Run("BOS already rendered is not doubled", func(t *testing.T) {
		// A tokenizer whose BOS text is parsed as the BOS id, like a model
		// template that renders <s> itself.
		e, err := EncodeSegments([]Segment{{Text: "x", Train: true}}, bosTextTokenizer{}, EncodeOptions{AddBOS: true})
		require.NoError(t, err)
		assert.Equal(t, []int32{bosID, 'x'}, e.IDs)
		e, err = EncodeSegments([]Segment{{Text: "<BOS>", Special: true}, {Text: "x", Train: true}}, bosTextTokenizer{}, EncodeOptions{AddBOS: true})
		require.NoError(t, err)
		assert.Equal(t, []int32{bosID, 'x'}, e.IDs)
	})
	t.Run("no BOS", func(t *testing.T) {
		e, err := EncodeSegments(segs, tok, EncodeOptions{})
		require.NoError(t, err)
		assert.Equal(t, int32('P'), e.IDs[0])
	})
	_, err := ParseTruncation("middle")
	assert.Error(t, err)
}

// bosTextTokenizer parses the text "<BOS>" as the BOS id when parsing specials.
type bosTextTokenizer struct{ byteTokenizer }

func (b bosTextTokenizer) Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	if parseSpecial && strings.HasPrefix(text, "<BOS>") {
		rest, _ := b.byteTokenizer.Tokenize(text[5:], false, true)
		return append([]int32{bosID}, rest...), nil
	}
	return b.byteTokenizer.Tokenize(text, addSpecial, parseSpecial)
}
