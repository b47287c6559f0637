package export

import "strings"

// ChatFormat is a known chat template written in Ollama's template syntax
// (Go text/template over .Messages, each with .Role and .Content; or the
// older .System/.Prompt/.Response), with the markers that end a reply.
type ChatFormat struct {
	Name     string   // "chatml", "llama3", "llama2", "phi3", "gemma", "alpaca"
	Template string   // Ollama TEMPLATE text
	Stops    []string // PARAMETER stop values
}

// chatFormats are the translations, each rendering what llama.cpp's built-in
// template of the same name renders for a conversation ending in a user turn
// (see chatformat_test.go), except that llama.cpp trims whitespace around
// Llama 3's and Gemma's messages. Ollama inserts the Modelfile's SYSTEM as the
// first message.
var chatFormats = []ChatFormat{
	{
		Name: "chatml",
		Template: `{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
`,
		Stops: []string{"<|im_start|>", "<|im_end|>"},
	},
	{
		Name: "llama3",
		Template: `{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

`,
		Stops: []string{"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
	},
	{
		// Llama 2 chat with a system prompt: [INST] <<SYS>> ... <</SYS>>, each
		// answer closed by </s> before the next [INST].
		Name: "llama2",
		Template: `[INST] {{ range .Messages }}{{ if eq .Role "system" }}<<SYS>>
{{ .Content }}
<</SYS>>

{{ else if eq .Role "user" }}{{ .Content }} [/INST]{{ else }}{{ .Content }}</s>[INST] {{ end }}{{ end }}`,
		Stops: []string{"[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"},
	},
	{
		Name: "phi3",
		Template: `{{- range .Messages }}<|{{ .Role }}|>
{{ .Content }}<|end|>
{{ end }}<|assistant|>
`,
		Stops: []string{"<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|endoftext|>"},
	},
	{
		// Gemma has no system role: the system text opens the first user turn.
		Name: "gemma",
		Template: `{{- $system := "" }}{{ range .Messages }}{{ if eq .Role "system" }}{{ $system = .Content }}{{ else }}<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}
{{ if and $system (ne .Role "assistant") }}{{ $system }}

{{ $system = "" }}{{ end }}{{ .Content }}<end_of_turn>
{{ end }}{{ end }}<start_of_turn>model
`,
		Stops: []string{"<start_of_turn>", "<end_of_turn>"},
	},
	{
		// Alpaca's single-turn instruction format, in Ollama's older
		// .System/.Prompt/.Response form.
		Name: "alpaca",
		Template: `{{ if .System }}{{ .System }}

{{ end }}### Instruction:
{{ .Prompt }}

### Response:
{{ .Response }}`,
		Stops: []string{"### Instruction:", "### Response:"},
	},
}

// ChatFormats returns the chat templates WriteOllama can translate.
func ChatFormats() []ChatFormat { return chatFormats }

// DetectChatFormat recognizes a model's chat template (tokenizer.chat_template,
// usually Jinja) by its markers, as llama.cpp does, or by a format's name.
func DetectChatFormat(tmpl string) (ChatFormat, bool) {
	has := func(s string) bool { return strings.Contains(tmpl, s) }
	name := strings.ToLower(strings.TrimSpace(tmpl))
	switch {
	case name == "chatml" || name == "llama3" || name == "llama2" || name == "phi3" || name == "gemma" || name == "alpaca":
	case has("<|im_start|>") && !has("<|im_sep|>"):
		name = "chatml"
	case has("<|start_header_id|>") && has("<|end_header_id|>"):
		name = "llama3"
	case has("[INST]") && has("<<SYS>>"):
		name = "llama2"
	case has("<|assistant|>") && has("<|end|>"):
		name = "phi3"
	case has("<start_of_turn>") && has("<end_of_turn>"):
		name = "gemma"
	case has("### Instruction:") && has("### Response:") && !has("<|EOT|>"):
		name = "alpaca"
	default:
		return ChatFormat{}, false
	}
	for _, f := range chatFormats {
		if f.Name == name {
			return f, true
		}
	}
	return ChatFormat{}, false
}
