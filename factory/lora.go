package factory

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/ecotune/ecotune/gguf"
)

// RandomLoRA writes a LoRA adapter for the model at base with seeded random factors of
// rank on every block's attention and feed-forward projection, in llama.cpp's adapter
// layout ("<weight>.lora_a" ne [n_in, rank], "<weight>.lora_b" ne [rank, n_out],
// adapter.lora.alpha = rank, so the scale is 1). Entries are uniform in [-amp, amp]:
// benchmarks need the shapes, tests a visible change (stories260K: about 0.3).
func RandomLoRA(base, out string, rank int64, amp float64, seed uint64) error {
	f, err := gguf.Open(base)
	if err != nil {
		return fmt.Errorf("random adapter: %w", err)
	}
	defer f.Close()
	arch, err := f.Meta.String("general.architecture")
	if err != nil {
		return fmt.Errorf("random adapter: %s: %w", base, err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	random := func(n int64) gguf.DataFunc {
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
			gguf.Tensor{TensorInfo: gguf.TensorInfo{Name: t.Name + ".lora_a", Dims: []int64{nIn, rank}, Type: gguf.TypeF32}, Data: random(nIn * rank)},
			gguf.Tensor{TensorInfo: gguf.TensorInfo{Name: t.Name + ".lora_b", Dims: []int64{rank, nOut}, Type: gguf.TypeF32}, Data: random(rank * nOut)})
	}
	if len(tensors) == 0 {
		return fmt.Errorf("random adapter: %s has no attention or feed-forward projection", base)
	}
	if err := (&gguf.Builder{Meta: meta, Tensors: tensors}).WriteFile(out); err != nil {
		return fmt.Errorf("random adapter: %w", err)
	}
	return nil
}

// isProjection reports whether a tensor is a block's attention or feed-forward weight.
func isProjection(name string) bool {
	if !strings.HasPrefix(name, "blk.") {
		return false
	}
	for _, p := range []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"} {
		if strings.HasSuffix(name, "."+p+".weight") {
			return true
		}
	}
	return false
}
