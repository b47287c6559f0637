package gguf_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/ecotune/ecotune/gguf"
)

// Write a small model, then read it back.
func Example() {
	dir, err := os.MkdirTemp("", "gguf-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tiny.gguf")

	meta := &gguf.Metadata{}
	meta.Set("general.architecture", gguf.ValueOf("llama"))
	meta.Set("llama.block_count", gguf.ValueOf(uint32(1)))
	meta.Set("tokenizer.ggml.tokens", gguf.ArrayOf([]string{"<unk>", "<s>", "</s>"}))
	b := &gguf.Builder{Meta: meta, Tensors: []gguf.Tensor{
		{
			TensorInfo: gguf.TensorInfo{Name: "token_embd.weight", Dims: []int64{32, 3}, Type: gguf.TypeQ8_0},
			Data:       gguf.DataBytes(make([]byte, 3*34)),
		},
		{
			TensorInfo: gguf.TensorInfo{Name: "output_norm.weight", Dims: []int64{32}, Type: gguf.TypeF32},
			Data:       gguf.DataBytes(make([]byte, 32*4)),
		},
	}}
	if err := b.WriteFile(path); err != nil {
		log.Fatal(err)
	}

	f, err := gguf.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	arch, _ := f.Meta.String("general.architecture")
	tokens, _ := f.Meta.Strings("tokenizer.ggml.tokens")
	fmt.Println(arch, len(tokens), "tokens")
	for _, t := range f.Tensors {
		data, _ := f.Data(t.Name)
		fmt.Println(t, len(data), "bytes")
	}
	// Output:
	// llama 3 tokens
	// token_embd.weight [32 3] q8_0 @0 102 bytes
	// output_norm.weight [32] f32 @128 128 bytes
}

// Derive a new file from an existing one with changed metadata.
func ExampleFile_Builder() {
	dir, err := os.MkdirTemp("", "gguf-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src.gguf")
	meta := &gguf.Metadata{}
	meta.Set("general.name", gguf.ValueOf("base"))
	if err := (&gguf.Builder{Meta: meta}).WriteFile(src); err != nil {
		log.Fatal(err)
	}

	f, err := gguf.Open(src)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	b := f.Builder()
	b.Meta.Set("general.name", gguf.ValueOf("tuned"))
	if err := b.WriteFile(filepath.Join(dir, "tuned.gguf")); err != nil {
		log.Fatal(err)
	}
	g, err := gguf.Open(filepath.Join(dir, "tuned.gguf"))
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	name, _ := g.Meta.String("general.name")
	fmt.Println(name)
	// Output: tuned
}
