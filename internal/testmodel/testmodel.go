// Package testmodel writes small model files for tests: LoRA adapters with seeded random
// factors, and copies of a model with a chat template.
package testmodel

import (
	"testing"

	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/gguf"
)

// WriteLoRA writes a LoRA adapter GGUF for the model at base with seeded random factors
// (factory.RandomLoRA); amp is the half-width of the uniform entries: stories260K needs
// about 0.3 for greedy output to change visibly.
func WriteLoRA(tb testing.TB, base, out string, rank int64, amp float64, seed uint64) {
	tb.Helper()
	if err := factory.RandomLoRA(base, out, rank, amp, seed); err != nil {
		tb.Fatal(err)
	}
}

// ChatMLTemplate is the ChatML chat template as a Jinja text, which llama.cpp recognizes
// by its <|im_start|> markers.
const ChatMLTemplate = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

// WithChatTemplate writes a copy of the model at base to out with tokenizer.chat_template
// set, for tests of chat APIs on models (such as stories260K) that carry none.
func WithChatTemplate(tb testing.TB, base, out, tmpl string) {
	tb.Helper()
	f, err := gguf.Open(base)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	b := f.Builder()
	b.Meta.Set("tokenizer.chat_template", gguf.ValueOf(tmpl))
	if err := b.WriteFile(out); err != nil {
		tb.Fatal(err)
	}
}
