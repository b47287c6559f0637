// Package testmodel writes small model files for tests: LoRA adapters with seeded random
// factors, and copies of a model with a chat template.
package testmodel

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ecotune/ecotune/gguf"
)

// WriteLoRA writes a LoRA adapter GGUF for the model at base with seeded random factors
// on every attention and feed-forward projection of every block: llama.cpp's adapter
// layout ("<weight>.lora_a" with ne [n_in, rank], "<weight>.lora_b" with ne [rank, n_out],
// adapter.lora.alpha = rank). amp is the half-width of the uniform entries; stories260K
// needs about 0.3 for greedy output to change visibly.
func WriteLoRA(tb testing.TB, base, out string, rank int64, amp float64, seed uint64) {
	tb.Helper()
	f, err := gguf.Open(base)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	arch, err := f.Meta.String("general.architecture")
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	data := func(n int64) gguf.DataFunc {
		b := make([]byte, 4*n)
		for i := range n {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32((rng.Float64()*2-1)*amp)))
		}
		return gguf.DataBytes(b)
	}
	meta := &gguf.Metadata{}
	meta.Set("general.architecture", gguf.ValueOf(arch))
	meta.Set("general.type", gguf.ValueOf("adapter"))
	meta.Set("adapter.type", gguf.ValueOf("lora"))
	meta.Set("adapter.lora.alpha", gguf.ValueOf(float32(rank)))
	var tensors []gguf.Tensor
	for _, t := range f.Tensors {
		if !isProjection(t.Name) || len(t.Dims) != 2 {
			continue
		}
		nIn, nOut := t.Dims[0], t.Dims[1]
		tensors = append(tensors,
			gguf.Tensor{TensorInfo: gguf.TensorInfo{Name: t.Name + ".lora_a", Dims: []int64{nIn, rank}, Type: gguf.TypeF32}, Data: data(nIn * rank)},
			gguf.Tensor{TensorInfo: gguf.TensorInfo{Name: t.Name + ".lora_b", Dims: []int64{rank, nOut}, Type: gguf.TypeF32}, Data: data(rank * nOut)})
	}
	if len(tensors) == 0 {
		tb.Fatalf("testenv: %s has no attention or feed-forward projection to adapt", base)
	}
	b := &gguf.Builder{Meta: meta, Tensors: tensors}
	if err := b.WriteFile(out); err != nil {
		tb.Fatal(err)
	}
}

// isProjection reports whether a tensor name is a block's attention or feed-forward weight.
func isProjection(name string) bool {
	for _, p := range []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"} {
		if strings.HasPrefix(name, "blk.") && strings.HasSuffix(name, "."+p+".weight") {
			return true
		}
	}
	return false
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
