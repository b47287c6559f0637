package data

import (
	"fmt"
	"strconv"
)

// Role names who speaks a turn: system, user or assistant.
type Role string

// The three roles every input shape is normalised to.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
)

// Message is one turn of a conversation; it is also what a ChatTemplater receives.
type Message struct {
	Role    Role   `json:"role"`
	Content string `json:"content"`
}

// Shape names the record layout an Example was read from.
type Shape string

// Shapes recognised in input records (see docs/formats.md).
const (
	ShapeQA          Shape = "qa"          // question/answer and aliases
	ShapeInstruction Shape = "instruction" // Alpaca instruction/input/output
	ShapeChatPairs   Shape = "chat_pairs"  // messages: [{user, assistant}, ...], one exchange per element
	ShapeChat        Shape = "chat"        // messages: [{role, content}, ...] (OpenAI/HF)
	ShapeShareGPT    Shape = "sharegpt"    // conversations: [{from, value}, ...]
	ShapeText        Shape = "text"        // raw text for continued pre-training
)

// Source locates a record in its input: file name, 1-based line where the
// record starts (0 for formats without lines, such as Parquet) and 1-based
// record index within the file (within Key for JSON objects holding arrays).
type Source struct {
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	Row  int    `json:"row"`
	Key  string `json:"key,omitempty"`
}

// String formats the location as file:line, or file row N when there is no line.
func (s Source) String() string {
	where := s.File
	if s.Key != "" {
		where += "[" + strconv.Quote(s.Key) + "]"
	}
	if s.Line > 0 {
		return where + ":" + strconv.Itoa(s.Line)
	}
	return fmt.Sprintf("%s row %d", where, s.Row)
}

// Example is one normalised training example: a conversation (Messages,
// optionally with Alpaca Input for the first user turn) or raw Text.
type Example struct {
	ID        string
	Source    Source
	Shape     Shape
	Messages  []Message
	Input     string // Alpaca "input": context for the first user turn; Turns merges it
	Text      string // set only for ShapeText
	Augmented bool
}

// IsText reports whether the example is raw pre-training text rather than a conversation.
func (e *Example) IsText() bool { return e.Shape == ShapeText }

// Turns returns the conversation with Input appended to the first user turn,
// which is how every template except Alpaca (which has an Input section) sees it.
func (e *Example) Turns() []Message {
	if e.Input == "" {
		return e.Messages
	}
	out := make([]Message, len(e.Messages))
	copy(out, e.Messages)
	for i := range out {
		if out[i].Role == RoleUser {
			out[i].Content += "\n\n" + e.Input
			break
		}
	}
	return out
}
