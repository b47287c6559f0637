package export_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/export"
	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/gguf"
)

// ollamaData is the data Ollama executes a TEMPLATE with (the fields the
// translations use).
type ollamaData struct {
	System, Prompt, Response string
	Messages                 []bindings.ChatMessage
}

func render(t *testing.T, tmpl string, data ollamaData) string {
	t.Helper()
	tp, err := template.New("ollama").Parse(tmpl)
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, tp.Execute(&b, data))
	return b.String()
}

func format(t *testing.T, name string) export.ChatFormat {
	t.Helper()
	for _, f := range export.ChatFormats() {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no chat format %s", name)
	return export.ChatFormat{}
}

// TestChatFormatsMatchLlamaCpp renders each translated template with Go's
// text/template (what Ollama runs) and compares the prompt with llama.cpp's
// built-in template of the same name.
func TestChatFormatsMatchLlamaCpp(t *testing.T) {
	convs := [][]bindings.ChatMessage{
		{{Role: "user", Content: "Hello"}},
		{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Why is the sky blue?"}},
		{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Why is the sky blue?"},
			{Role: "assistant", Content: "Rayleigh scattering."}, {Role: "user", Content: "And sunsets?\nTwo lines."}},
		{{Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello!"}, {Role: "user", Content: "Bye"}},
	}
	for name, builtin := range map[string]string{"chatml": "chatml", "llama3": "llama3", "llama2": "llama2-sys", "phi3": "phi3", "gemma": "gemma"} {
		f := format(t, name)
		for i, msgs := range convs {
			want, err := bindings.ApplyChatTemplate(builtin, msgs, true)
			require.NoError(t, err)
			got := render(t, f.Template, ollamaData{Messages: msgs})
			assert.Equal(t, want, got, "%s, conversation %d", name, i)
			for _, s := range f.Stops {
				assert.NotContains(t, msgs[len(msgs)-1].Content, s)
			}
		}
	}
}

// TestAlpacaFormat: Alpaca has no llama.cpp built-in; the expected prompt is
// the format as published (instruction and response headers).
func TestAlpacaFormat(t *testing.T) {
	f := format(t, "alpaca")
	got := render(t, f.Template, ollamaData{System: "Below is an instruction that describes a task.", Prompt: "Name a gas."})
	assert.Equal(t, "Below is an instruction that describes a task.\n\n### Instruction:\nName a gas.\n\n### Response:\n", got)
	got = render(t, f.Template, ollamaData{Prompt: "Name a gas."})
	assert.Equal(t, "### Instruction:\nName a gas.\n\n### Response:\n", got)
}

func TestDetectChatFormat(t *testing.T) {
	vocabTemplate := func(name string) string {
		f, err := gguf.Open(vocab(t, name))
		require.NoError(t, err)
		defer f.Close()
		s, err := f.Meta.String("tokenizer.chat_template")
		require.NoError(t, err)
		return s
	}
	for tmpl, want := range map[string]string{
		vocabTemplate("phi-3"): "phi3",
		vocabTemplate("qwen2"): "chatml",
		"{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}": "llama3",
		"{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}":               "gemma",
		"{% if system %}<<SYS>>\n{{ system }}\n<</SYS>>\n\n{% endif %}[INST] {{ content }} [/INST]":                                                                   "llama2",
		"{{ instruction }}\n\n### Instruction:\n{{ prompt }}\n\n### Response:\n":                                                                                      "alpaca",
		"ChatML":                                            "chatml",
		vocabTemplate("command-r"):                          "",
		"[INST] {{ content }} [/INST]":                      "", // Mistral, not Llama 2
		"<|im_start|>user<|im_sep|>hi<|im_end|>":            "", // Phi-4
		"### Instruction:\n{{ x }}\n### Response:\n<|EOT|>": "", // DeepSeek coder
	} {
		f, ok := export.DetectChatFormat(tmpl)
		assert.Equal(t, want != "", ok, "%.60q", tmpl)
		assert.Equal(t, want, f.Name, "%.60q", tmpl)
	}
}

// TestWriteOllama writes a Modelfile for a phi3 model whose tokenizer
// carries Phi-3's Jinja template, and checks each directive.
func TestWriteOllama(t *testing.T) {
	base := filepath.Join(t.TempDir(), "phi3 base.gguf")
	require.NoError(t, factory.Init(factory.Spec{Arch: "phi3", Embd: 64, Layers: 1, Heads: 4, FF: 96, VocabFile: vocab(t, "phi-3"), Seed: 1}, base))
	a := writeAdapter(t, base, adapterSpec{targets: []string{"attn_qkv.weight"}, rank: 2, alpha: 4, seed: 1, stdB: 0.1})

	dir := filepath.Join(t.TempDir(), "ollama")
	sum, err := export.WriteOllama(export.OllamaOptions{Base: base, Adapter: a, Dir: dir, System: "You answer questions about the environment."})
	require.NoError(t, err)
	assert.Equal(t, "phi3", sum.Format)
	raw, err := os.ReadFile(sum.Path)
	require.NoError(t, err)
	mf := string(raw)
	absBase, _ := filepath.Abs(base)
	absAdapter, _ := filepath.Abs(a)
	assert.Contains(t, mf, "\nFROM \""+absBase+"\"\n", "a path with a space is quoted")
	assert.Contains(t, mf, "\nADAPTER "+absAdapter+"\n")
	assert.Contains(t, mf, "TEMPLATE \"\"\""+format(t, "phi3").Template+"\"\"\"\n")
	assert.Contains(t, mf, "PARAMETER stop \"<|end|>\"\n")
	assert.Contains(t, mf, "SYSTEM \"\"\"You answer questions about the environment.\"\"\"\n")

	// llama.cpp's own reading of the model's Jinja template gives the prompt
	// the translation gives.
	tmpl, err := func() (string, error) {
		f, err := gguf.Open(base)
		if err != nil {
			return "", err
		}
		defer f.Close()
		return f.Meta.String("tokenizer.chat_template")
	}()
	require.NoError(t, err)
	msgs := []bindings.ChatMessage{{Role: "user", Content: "What is ozone?"}}
	want, err := bindings.ApplyChatTemplate(tmpl, msgs, true)
	require.NoError(t, err)
	assert.Equal(t, want, render(t, format(t, "phi3").Template, ollamaData{Messages: msgs}))

	// Self-contained directory; an explicit format; an unknown format.
	dir2 := filepath.Join(t.TempDir(), "copy")
	sum, err = export.WriteOllama(export.OllamaOptions{Base: base, Adapter: a, Dir: dir2, Copy: true, Format: "chatml"})
	require.NoError(t, err)
	assert.Equal(t, "chatml", sum.Format)
	raw, err = os.ReadFile(sum.Path)
	require.NoError(t, err)
	assert.Contains(t, string(raw), "\nFROM \"./phi3 base.gguf\"\n")
	assert.Contains(t, string(raw), "\nADAPTER ./"+filepath.Base(a)+"\n")
	for _, p := range []string{base, a} {
		x, err := os.ReadFile(p)
		require.NoError(t, err)
		y, err := os.ReadFile(filepath.Join(dir2, filepath.Base(p)))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(x, y), p)
	}
	_, err = export.WriteOllama(export.OllamaOptions{Base: base, Adapter: a, Dir: dir2, Format: "vicuna"})
	assert.ErrorContains(t, err, `unknown chat format "vicuna"`)

	// A model without a chat template gets no TEMPLATE.
	plain := initModel(t, peftSpecs["llama"])
	pa := writeAdapter(t, plain, adapterSpec{targets: []string{"attn_q.weight"}, rank: 2, alpha: 4, seed: 1, stdB: 0.1})
	sum, err = export.WriteOllama(export.OllamaOptions{Base: plain, Adapter: pa, Dir: t.TempDir()})
	require.NoError(t, err)
	assert.Empty(t, sum.Format)
	raw, err = os.ReadFile(sum.Path)
	require.NoError(t, err)
	assert.False(t, strings.Contains(string(raw), "TEMPLATE"))
}
