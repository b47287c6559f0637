package hostile

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ecotune/ecotune/gguf"
)

// AdapterRank and adapterTargets describe the adapter ValidAdapter writes.
const AdapterRank = 4

var adapterTargets = []string{"blk.0.attn_q.weight", "blk.1.attn_v.weight"}

// adapterSpec is a LoRA adapter to encode: metadata and pairs with their shapes.
type adapterSpec struct {
	arch, generalType, adapterType string
	alpha                          gguf.Value
	pairs                          []pairSpec
}

type pairSpec struct {
	name         string // base tensor name
	a, b         []int64
	typA, typB   gguf.Type
	skipA, skipB bool
}

// defaultAdapter is a valid rank-4 adapter for the base model's shapes.
func defaultAdapter(base *gguf.File) (adapterSpec, error) {
	s := adapterSpec{arch: "llama", generalType: "adapter", adapterType: "lora", alpha: gguf.ValueOf(float32(8))}
	for _, name := range adapterTargets {
		t, ok := base.Tensor(name)
		if !ok || len(t.Dims) != 2 {
			return s, fmt.Errorf("base model has no 2-D %s", name)
		}
		s.pairs = append(s.pairs, pairSpec{name: name, a: []int64{t.Dims[0], AdapterRank}, b: []int64{AdapterRank, t.Dims[1]}})
	}
	return s, nil
}

// encode writes s with small deterministic values in every pair.
func (s adapterSpec) encode() ([]byte, error) {
	meta := &gguf.Metadata{}
	if s.arch != "" {
		meta.Set("general.architecture", gguf.ValueOf(s.arch))
	}
	meta.Set("general.type", gguf.ValueOf(s.generalType))
	meta.Set("adapter.type", gguf.ValueOf(s.adapterType))
	meta.Set("adapter.lora.alpha", s.alpha)
	rng := rand.New(rand.NewPCG(4, 2))
	values := func(dims []int64, typ gguf.Type) (gguf.DataFunc, error) {
		info := gguf.TensorInfo{Dims: dims, Type: typ}
		n, err := info.Size()
		if err != nil {
			return nil, err
		}
		b := make([]byte, n)
		if typ == gguf.TypeF32 {
			for i := 0; i+4 <= len(b); i += 4 {
				binary.LittleEndian.PutUint32(b[i:], math.Float32bits(float32(rng.NormFloat64()*0.02)))
			}
		}
		return gguf.DataBytes(b), nil
	}
	var tensors []gguf.Tensor
	for _, p := range s.pairs {
		for _, half := range []struct {
			suffix string
			dims   []int64
			typ    gguf.Type
			skip   bool
		}{{".lora_a", p.a, p.typA, p.skipA}, {".lora_b", p.b, p.typB, p.skipB}} {
			if half.skip {
				continue
			}
			data, err := values(half.dims, half.typ)
			if err != nil {
				return nil, err
			}
			tensors = append(tensors, gguf.Tensor{TensorInfo: gguf.TensorInfo{Name: p.name + half.suffix, Dims: half.dims, Type: half.typ}, Data: data})
		}
	}
	var buf bytes.Buffer
	if _, err := (&gguf.Builder{Meta: meta, Tensors: tensors}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ValidAdapter returns a well-formed rank-4 LoRA adapter for base (the model Models
// takes), adapting blk.0.attn_q and blk.1.attn_v: the companion input of the commands
// that need an adapter besides the hostile one.
func ValidAdapter(base []byte) ([]byte, error) {
	f, err := gguf.ParseBytes(base)
	if err != nil {
		return nil, fmt.Errorf("hostile: base model: %w", err)
	}
	s, err := defaultAdapter(f)
	if err != nil {
		return nil, fmt.Errorf("hostile: %w", err)
	}
	return s.encode()
}

// Adapters returns hostile LoRA adapters for base.
func Adapters(base []byte) ([]Entry, error) {
	f, err := gguf.ParseBytes(base)
	if err != nil {
		return nil, fmt.Errorf("hostile: base model: %w", err)
	}
	valid, err := ValidAdapter(base)
	if err != nil {
		return nil, err
	}
	var out []Entry
	add := func(name, want string, b []byte) {
		out = append(out, bytesEntry("adapter-"+name, KindAdapter, ".gguf", want, b))
	}
	add("truncated", `truncated|end of file|past end|beyond end`, valid[:len(valid)/2])
	add("text", `magic|GGUF`, []byte("lora\n"))
	add("model-as-adapter", `general\.type|adapter`, base)

	specs := []struct {
		name, want string
		change     func(s *adapterSpec)
	}{
		{"other-base-shapes", `blk\.0\.attn_q\.weight`, func(s *adapterSpec) {
			s.pairs[0].a, s.pairs[0].b = []int64{128, AdapterRank}, []int64{AdapterRank, 128}
		}},
		{"other-arch", `architecture|qwen2`, func(s *adapterSpec) { s.arch = "qwen2" }},
		{"no-arch", `architecture`, func(s *adapterSpec) { s.arch = "" }},
		{"tensor-not-in-base", `blk\.7\.attn_q\.weight`, func(s *adapterSpec) { s.pairs[1].name = "blk.7.attn_q.weight" }},
		{"rank-mismatch", `blk\.0\.attn_q\.weight`, func(s *adapterSpec) { s.pairs[0].b = []int64{AdapterRank - 1, 64} }},
		{"lora-b-missing", `blk\.1\.attn_v\.weight`, func(s *adapterSpec) { s.pairs[1].skipB = true }},
		{"lora-a-3d", `blk\.0\.attn_q\.weight`, func(s *adapterSpec) { s.pairs[0].a = []int64{64, AdapterRank, 2} }},
		{"lora-a-i32", `blk\.0\.attn_q\.weight`, func(s *adapterSpec) { s.pairs[0].typA = gguf.TypeI32 }},
		{"alpha-u32", `adapter\.lora\.alpha`, func(s *adapterSpec) { s.alpha = gguf.ValueOf(uint32(8)) }},
		{"alpha-nan", `adapter\.lora\.alpha`, func(s *adapterSpec) { s.alpha = gguf.ValueOf(float32(math.NaN())) }},
		{"alpha-inf", `adapter\.lora\.alpha`, func(s *adapterSpec) { s.alpha = gguf.ValueOf(float32(math.Inf(1))) }},
		{"general-type-model", `general\.type`, func(s *adapterSpec) { s.generalType = "model" }},
		{"adapter-type-ia3", `adapter\.type`, func(s *adapterSpec) { s.adapterType = "ia3" }},
		{"no-pairs", `pairs|lora_a|no .*tensor`, func(s *adapterSpec) { s.pairs = nil }},
	}
	for _, c := range specs {
		s, err := defaultAdapter(f)
		if err != nil {
			return nil, fmt.Errorf("hostile: %w", err)
		}
		c.change(&s)
		b, err := s.encode()
		if err != nil {
			return nil, fmt.Errorf("hostile: adapter-%s: %w", c.name, err)
		}
		add(c.name, c.want, b)
	}

	// A rank-0 pair has zero-sized tensors, which no writer emits.
	r := newRawGGUF(2, 4).kvStr("general.architecture", "llama").kvStr("general.type", "adapter").
		kvStr("adapter.type", "lora").kvF32("adapter.lora.alpha", math.Float32bits(8))
	r.tensor("blk.0.attn_q.weight.lora_a", 0, 64, 0).tensor("blk.0.attn_q.weight.lora_b", 0, 0, 64)
	add("rank-0", `rank|blk\.0\.attn_q\.weight|dimension`, r.data(0))
	// Lengths near 2^63 in the adapter's header.
	add("tensor-count-huge", `tensor count`, patched(valid, 8, uint64(1<<63-1)))
	return out, nil
}
