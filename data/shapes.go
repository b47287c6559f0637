package data

import (
	"fmt"
	"strconv"
	"strings"
)

// FieldMap renames the fields shape detection looks for, for datasets whose
// columns have other names. An empty entry keeps the default names and
// aliases; a set entry is the only name tried for that slot.
type FieldMap struct {
	Question    string `json:"question,omitempty"`
	Answer      string `json:"answer,omitempty"`
	Instruction string `json:"instruction,omitempty"`
	Input       string `json:"input,omitempty"`
	Output      string `json:"output,omitempty"`
	System      string `json:"system,omitempty"`
	Messages    string `json:"messages,omitempty"` // list of turns (chat, chat pairs or ShareGPT)
	Role        string `json:"role,omitempty"`     // role key inside a turn
	Content     string `json:"content,omitempty"`  // content key inside a turn
	Text        string `json:"text,omitempty"`
	ID          string `json:"id,omitempty"`
}

// ParseFieldMap parses "slot=column" pairs, as given to --field, into a
// FieldMap; slots are the lower-case FieldMap field names.
func ParseFieldMap(pairs []string) (FieldMap, error) {
	var m FieldMap
	for _, p := range pairs {
		slot, col, ok := strings.Cut(p, "=")
		col = strings.TrimSpace(col)
		if !ok || col == "" {
			return m, fmt.Errorf("field mapping %q: want slot=column, e.g. question=prompt_text", p)
		}
		dst := m.slot(strings.ToLower(strings.TrimSpace(slot)))
		if dst == nil {
			return m, fmt.Errorf("field mapping %q: unknown slot %q (want question, answer, instruction, input, output, system, messages, role, content, text or id)", p, slot)
		}
		*dst = col
	}
	return m, nil
}

func (m *FieldMap) slot(name string) *string {
	switch name {
	case "question":
		return &m.Question
	case "answer":
		return &m.Answer
	case "instruction":
		return &m.Instruction
	case "input":
		return &m.Input
	case "output":
		return &m.Output
	case "system":
		return &m.System
	case "messages":
		return &m.Messages
	case "role":
		return &m.Role
	case "content":
		return &m.Content
	case "text":
		return &m.Text
	case "id":
		return &m.ID
	}
	return nil
}

// names returns the keys to try for a slot: the mapped name alone, or the defaults.
func names(mapped string, defaults ...string) []string {
	if mapped != "" {
		return []string{mapped}
	}
	return defaults
}

// converter turns generic records into Examples; it holds the resolved key
// lists so they are not rebuilt per record.
type converter struct {
	shape        Shape
	keepHTML     bool
	systemPrompt string

	question, answer, instruction, input, output []string
	system, messages, role, content, text, id    []string
}

func newConverter(o *ReadOptions) *converter {
	f := o.Fields
	return &converter{
		shape:        o.Shape,
		keepHTML:     o.KeepHTML,
		systemPrompt: CleanText(o.SystemPrompt, true),
		question:     names(f.Question, "question", "prompt", "query", "input"),
		answer:       names(f.Answer, "answer", "response", "output", "completion"),
		instruction:  names(f.Instruction, "instruction"),
		input:        names(f.Input, "input", "context"),
		output:       names(f.Output, "output", "response", "answer", "completion"),
		system:       names(f.System, "system", "system_prompt"),
		messages:     names(f.Messages, "messages", "conversations"),
		role:         names(f.Role, "role"),
		content:      names(f.Content, "content"),
		text:         names(f.Text, "text"),
		id:           names(f.ID, "id"),
	}
}

// lookup finds the first of keys present in rec: exact names first, then
// case-insensitively, since CSV headers are often capitalised.
func lookup(rec map[string]any, keys []string) (string, any, bool) {
	for _, k := range keys {
		if v, ok := rec[k]; ok {
			return k, v, true
		}
	}
	for _, k := range keys {
		for rk, v := range rec {
			if strings.EqualFold(rk, k) {
				return rk, v, true
			}
		}
	}
	return "", nil, false
}

// toExample detects the record's shape and converts, cleans and validates it.
func (c *converter) toExample(rec map[string]any, src Source) (Example, error) {
	ex := Example{Source: src}
	if err := c.fill(&ex, rec); err != nil {
		return ex, err
	}
	if _, v, ok := lookup(rec, c.id); ok {
		ex.ID = idString(v)
	}
	if ex.IsText() {
		return ex, nil
	}
	if c.systemPrompt != "" && (len(ex.Messages) == 0 || ex.Messages[0].Role != RoleSystem) {
		ex.Messages = append([]Message{{Role: RoleSystem, Content: c.systemPrompt}}, ex.Messages...)
	}
	for _, m := range ex.Messages {
		if m.Role == RoleAssistant {
			return ex, nil
		}
	}
	return ex, &RecordError{Reason: ReasonNoAssistantTurn, Detail: "the conversation has no assistant turn"}
}

func (c *converter) fill(ex *Example, rec map[string]any) error {
	if c.shape != "" {
		return c.fillAs(c.shape, ex, rec)
	}
	if k, v, ok := lookup(rec, c.messages); ok {
		if _, isList := asList(v); isList {
			return c.fillChat(ex, rec, k, v)
		}
	}
	if _, _, ok := lookup(rec, c.instruction); ok {
		return c.fillAs(ShapeInstruction, ex, rec)
	}
	qk, qv, hasQ := lookup(rec, c.question)
	_, _, hasA := lookup(rec, c.answer)
	if hasQ && hasA {
		if _, isList := asList(qv); isList && qk != "" {
			return c.fillPromptCompletion(ex, rec)
		}
		return c.fillAs(ShapeQA, ex, rec)
	}
	if _, _, ok := lookup(rec, c.text); ok {
		return c.fillAs(ShapeText, ex, rec)
	}
	if k, v, ok := lookup(rec, c.messages); ok {
		return &RecordError{Reason: ReasonWrongType, Field: k, Detail: "want a list of turns, got " + typeName(v)}
	}
	if hasQ {
		return &RecordError{Reason: ReasonMissingField, Field: c.answer[0], Detail: fmt.Sprintf("record has %q but no answer field (%s)", qk, strings.Join(c.answer, ", "))}
	}
	return &RecordError{Reason: ReasonUnknownShape, Detail: "fields " + keyList(rec) + " match no known shape (see docs/formats.md, or map fields with --field)"}
}

func (c *converter) fillAs(shape Shape, ex *Example, rec map[string]any) error {
	ex.Shape = shape
	switch shape {
	case ShapeQA:
		q, err := c.required(rec, c.question)
		if err != nil {
			return err
		}
		a, err := c.required(rec, c.answer)
		if err != nil {
			return err
		}
		ex.Messages = append(c.systemTurn(rec), Message{RoleUser, q}, Message{RoleAssistant, a})
		return nil
	case ShapeInstruction:
		ins, err := c.required(rec, c.instruction)
		if err != nil {
			return err
		}
		out, err := c.required(rec, c.output)
		if err != nil {
			return err
		}
		if k, v, ok := lookup(rec, c.input); ok {
			if ex.Input, err = c.str(k, v); err != nil {
				return err
			}
		}
		ex.Messages = append(c.systemTurn(rec), Message{RoleUser, ins}, Message{RoleAssistant, out})
		return nil
	case ShapeText:
		t, err := c.required(rec, c.text)
		if err != nil {
			return err
		}
		ex.Text = t
		return nil
	case ShapeChat, ShapeChatPairs, ShapeShareGPT:
		k, v, ok := lookup(rec, c.messages)
		if !ok {
			return &RecordError{Reason: ReasonMissingField, Field: c.messages[0]}
		}
		return c.fillChat(ex, rec, k, v)
	}
	return fmt.Errorf("unknown shape %q", shape)
}

// fillChat reads a list of turns. The element keys decide the style:
// role/content (OpenAI/HF), from/value (ShareGPT) or user/assistant (one
// exchange per element, the original pipeline's format).
func (c *converter) fillChat(ex *Example, rec map[string]any, key string, v any) error {
	list, ok := asList(v)
	if !ok {
		return &RecordError{Reason: ReasonWrongType, Field: key, Detail: "want a list of turns, got " + typeName(v)}
	}
	if len(list) == 0 {
		return &RecordError{Reason: ReasonEmptyField, Field: key, Detail: "no turns"}
	}
	first, ok := list[0].(map[string]any)
	if !ok {
		return &RecordError{Reason: ReasonWrongType, Field: key + "[0]", Detail: "want an object, got " + typeName(list[0])}
	}
	msgs := c.systemTurn(rec)
	var err error
	switch {
	case has(first, c.role):
		ex.Shape = ShapeChat
		msgs, err = c.turns(msgs, key, list, c.role, c.content)
	case has(first, []string{"from"}):
		ex.Shape = ShapeShareGPT
		msgs, err = c.turns(msgs, key, list, []string{"from"}, []string{"value"})
	case has(first, []string{"user"}) || has(first, []string{"assistant"}):
		ex.Shape = ShapeChatPairs
		msgs, err = c.pairs(msgs, key, list)
	default:
		return &RecordError{Reason: ReasonUnknownShape, Field: key + "[0]", Detail: "turn has fields " + keyList(first) + ", want role/content, from/value or user/assistant"}
	}
	ex.Messages = msgs
	return err
}

// fillPromptCompletion reads TRL's conversational prompt-completion shape,
// where prompt and completion are both lists of role/content turns.
func (c *converter) fillPromptCompletion(ex *Example, rec map[string]any) error {
	ex.Shape = ShapeChat
	msgs := c.systemTurn(rec)
	for _, keys := range [][]string{c.question, c.answer} {
		k, v, _ := lookup(rec, keys)
		list, ok := asList(v)
		if !ok {
			return &RecordError{Reason: ReasonWrongType, Field: k, Detail: "want a list of turns, got " + typeName(v)}
		}
		var err error
		if msgs, err = c.turns(msgs, k, list, c.role, c.content); err != nil {
			return err
		}
	}
	ex.Messages = msgs
	return nil
}

func (c *converter) turns(msgs []Message, key string, list []any, roleKeys, contentKeys []string) ([]Message, error) {
	for i, el := range list {
		path := key + "[" + strconv.Itoa(i) + "]"
		obj, ok := el.(map[string]any)
		if !ok {
			return nil, &RecordError{Reason: ReasonWrongType, Field: path, Detail: "want an object, got " + typeName(el)}
		}
		rk, rv, ok := lookup(obj, roleKeys)
		if !ok {
			return nil, &RecordError{Reason: ReasonMissingField, Field: path + "." + roleKeys[0]}
		}
		rs, ok := rv.(string)
		if !ok {
			return nil, &RecordError{Reason: ReasonWrongType, Field: path + "." + rk, Detail: "want a string, got " + typeName(rv)}
		}
		role, ok := mapRole(rs)
		if !ok {
			return nil, &RecordError{Reason: ReasonInvalidRole, Field: path + "." + rk, Detail: fmt.Sprintf("role %q (want system, user or assistant, or a ShareGPT name: human, gpt)", rs)}
		}
		ck, cv, ok := lookup(obj, contentKeys)
		if !ok {
			return nil, &RecordError{Reason: ReasonMissingField, Field: path + "." + contentKeys[0]}
		}
		text, err := c.str(path+"."+ck, cv)
		if err != nil {
			return nil, err
		}
		if text == "" {
			if role == RoleSystem {
				continue // an empty system turn says nothing; dropping it is harmless
			}
			return nil, &RecordError{Reason: ReasonEmptyField, Field: path + "." + ck}
		}
		msgs = append(msgs, Message{role, text})
	}
	return msgs, nil
}

func (c *converter) pairs(msgs []Message, key string, list []any) ([]Message, error) {
	for i, el := range list {
		path := key + "[" + strconv.Itoa(i) + "]"
		obj, ok := el.(map[string]any)
		if !ok {
			return nil, &RecordError{Reason: ReasonWrongType, Field: path, Detail: "want an object, got " + typeName(el)}
		}
		if k, v, ok := lookup(obj, []string{"system"}); ok {
			s, err := c.str(path+"."+k, v)
			if err != nil {
				return nil, err
			}
			if s != "" {
				msgs = append(msgs, Message{RoleSystem, s})
			}
		}
		found := false
		for _, r := range []Role{RoleUser, RoleAssistant} {
			k, v, ok := lookup(obj, []string{string(r)})
			if !ok {
				continue
			}
			s, err := c.str(path+"."+k, v)
			if err != nil {
				return nil, err
			}
			if s == "" {
				return nil, &RecordError{Reason: ReasonEmptyField, Field: path + "." + k}
			}
			msgs = append(msgs, Message{r, s})
			found = true
		}
		if !found {
			return nil, &RecordError{Reason: ReasonMissingField, Field: path + ".user", Detail: "exchange has neither user nor assistant"}
		}
	}
	return msgs, nil
}

// systemTurn returns the record-level system prompt as a first turn, if any.
func (c *converter) systemTurn(rec map[string]any) []Message {
	k, v, ok := lookup(rec, c.system)
	if !ok {
		return nil
	}
	s, err := c.str(k, v)
	if err != nil || s == "" {
		return nil // a non-text "system" column is metadata, not a prompt
	}
	return []Message{{RoleSystem, s}}
}

// required returns the cleaned, non-empty text of the first present key.
func (c *converter) required(rec map[string]any, keys []string) (string, error) {
	k, v, ok := lookup(rec, keys)
	if !ok {
		return "", &RecordError{Reason: ReasonMissingField, Field: keys[0]}
	}
	s, err := c.str(k, v)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", &RecordError{Reason: ReasonEmptyField, Field: k}
	}
	return s, nil
}

// str returns a text field cleaned. Multi-part content (OpenAI's list of
// {"type":"text","text":...}) is joined; other types are errors because
// silently printing a number or object as text hides a broken mapping.
func (c *converter) str(path string, v any) (string, error) {
	switch t := v.(type) {
	case string:
		return CleanText(t, c.keepHTML), nil
	case nil:
		return "", nil
	case []byte:
		return CleanText(string(t), c.keepHTML), nil
	case []any:
		var parts []string
		for i, p := range t {
			obj, ok := p.(map[string]any)
			if !ok {
				return "", &RecordError{Reason: ReasonWrongType, Field: fmt.Sprintf("%s[%d]", path, i), Detail: "want a content part object, got " + typeName(p)}
			}
			if typ, _ := obj["type"].(string); typ != "" && typ != "text" {
				return "", &RecordError{Reason: ReasonWrongType, Field: fmt.Sprintf("%s[%d]", path, i), Detail: fmt.Sprintf("content part of type %q; only text is supported", typ)}
			}
			s, ok := obj["text"].(string)
			if !ok {
				return "", &RecordError{Reason: ReasonWrongType, Field: fmt.Sprintf("%s[%d].text", path, i), Detail: "want a string, got " + typeName(obj["text"])}
			}
			parts = append(parts, s)
		}
		return CleanText(strings.Join(parts, "\n"), c.keepHTML), nil
	}
	return "", &RecordError{Reason: ReasonWrongType, Field: path, Detail: "want a string, got " + typeName(v)}
}

// mapRole maps the role names found in the wild onto the three roles.
func mapRole(s string) (Role, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "system", "developer":
		return RoleSystem, true
	case "user", "human", "prompter", "question":
		return RoleUser, true
	case "assistant", "gpt", "model", "bot", "ai", "chatgpt", "bard", "answer":
		return RoleAssistant, true
	}
	return "", false
}

// asList accepts a list, or a string holding a JSON list, which is how CSV
// exports of chat datasets carry their messages column.
func asList(v any) ([]any, bool) {
	switch t := v.(type) {
	case []any:
		return t, true
	case string:
		s := strings.TrimSpace(t)
		if strings.HasPrefix(s, "[") {
			var l []any
			if err := unmarshalJSON([]byte(s), &l); err == nil {
				return l, true
			}
		}
	}
	return nil, false
}

func has(obj map[string]any, keys []string) bool {
	_, _, ok := lookup(obj, keys)
	return ok
}

// idString formats an id value; numbers print without exponent or ".0".
func idString(v any) string {
	switch t := v.(type) {
	case string:
		return strings.TrimSpace(t)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(t, 10)
	case int32:
		return strconv.FormatInt(int64(t), 10)
	case int:
		return strconv.Itoa(t)
	case uint64:
		return strconv.FormatUint(t, 10)
	case []byte:
		return string(t)
	}
	return ""
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string, []byte:
		return "string"
	case bool:
		return "boolean"
	case float64, float32, int, int32, int64, uint32, uint64:
		return "number"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// keyList names a record's keys in sorted order for messages.
func keyList(rec map[string]any) string {
	ks := make([]string, 0, len(rec))
	for k := range rec {
		ks = append(ks, k)
	}
	sortStrings(ks)
	return "[" + strings.Join(ks, ", ") + "]"
}
