package hostile

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ecotune/ecotune/gguf"
)

// Models returns the hostile variants of base, a valid llama GGUF model with at least
// two blocks, a tokenizer and F32 weights (testdata/stories260K.gguf).
func Models(base []byte) ([]Entry, error) {
	l, err := walk(base)
	if err != nil {
		return nil, fmt.Errorf("hostile: base model: %w", err)
	}
	var out []Entry
	part := PartFormat
	add := func(name, want string, b []byte) {
		e := bytesEntry("model-"+name, KindModel, ".gguf", want, b)
		e.Part = part
		out = append(out, e)
	}

	// Truncation at every section boundary: the header fields, the first key-value pair,
	// the middle and end of the metadata, the tensor infos, the data section.
	const trunc = `truncated|end of file|past end|too short|file is \d+ bytes|beyond end|EOF`
	cuts := []struct {
		name string
		at   int
	}{
		{"empty", 0}, {"magic-half", 2}, {"after-magic", 4}, {"after-version", 8}, {"after-tensor-count", 16},
		{"after-kv-count", 24}, {"first-key-half", l.keyAt[firstKey(l)] + 10}, {"after-first-kv", l.kvEnds[0]},
		{"kv-middle", (l.kvEnds[0] + l.kvEnds[len(l.kvEnds)-1]) / 2}, {"after-kvs", l.kvEnds[len(l.kvEnds)-1]},
		{"first-info-half", l.kvEnds[len(l.kvEnds)-1] + 12}, {"after-first-info", l.infoEnds[0]},
		{"after-infos", l.infoEnds[len(l.infoEnds)-1]}, {"at-data", l.dataOffset},
		{"data-middle", (l.dataOffset + l.dataEnd) / 2}, {"last-byte", l.dataEnd - 1},
	}
	for _, c := range cuts {
		add("truncated-"+c.name, trunc, base[:c.at])
	}
	add("text", `magic|GGUF`, []byte("this is not a model\n"))
	add("safetensors-header", `magic|GGUF`, []byte("\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":1}        "))

	// Counts and lengths near 2^63 in each length field of the header.
	for _, v := range []uint64{1<<63 - 1, 1 << 63, math.MaxUint64} {
		add(fmt.Sprintf("tensor-count-%x", v), `tensor count`, patched(base, 8, v))
		add(fmt.Sprintf("kv-count-%x", v), `metadata count|kv count`, patched(base, 16, v))
	}
	add("key-length-huge", `key|length`, patched(base, l.keyAt[firstKey(l)], uint64(1<<63-1)))
	tokens := l.valueAt["tokenizer.ggml.tokens"]
	add("tokens-count-huge", `tokenizer\.ggml\.tokens`, patched(base, tokens+4+4, uint64(1<<62)))
	add("tokens-elem-type-bad", `tokenizer\.ggml\.tokens`, patched(base, tokens+4, uint32(77)))
	add("value-type-bad", `general\.architecture|type`, patched(base, l.valueAt["general.architecture"], uint32(99)))
	q := "blk.0.attn_q.weight"
	nDimsAt, dimsAt, typeAt, offsetAt := l.infoFields(base, q)
	add("tensor-ndims-huge", `blk\.0\.attn_q\.weight`, patched(base, nDimsAt, uint32(math.MaxUint32)))
	add("tensor-dim-huge", `blk\.0\.attn_q\.weight`, patched(base, dimsAt[1], uint64(1<<63-1)))
	add("tensor-dim-zero", `blk\.0\.attn_q\.weight`, patched(base, dimsAt[1], uint64(0)))
	add("tensor-type-unknown", `blk\.0\.attn_q\.weight`, patched(base, typeAt, uint32(9999)))
	add("tensor-offset-huge", `blk\.0\.attn_q\.weight`, patched(base, offsetAt, uint64(1<<63-32)))
	add("tensor-offset-overlap", `blk\.0\.attn_q\.weight|blk\.0\.attn_k\.weight|overlap|offset`, patched(base, l.infoFields4(base, "blk.0.attn_k.weight"), uint64(0)))
	// Same length as attn_q: the header stays in place, two tensors share a name.
	dup := append([]byte(nil), base...)
	copy(dup[l.infoAt["blk.0.attn_k.weight"]+8:], "blk.0.attn_q.weight")
	add("tensor-duplicate-name", `duplicate|blk\.0\.attn_q\.weight`, dup)

	// Hyper-parameters that contradict themselves or the tensors.
	edits := []struct {
		part       Part
		name, want string
		edit       func(f *gguf.File, b *gguf.Builder) error
	}{
		{PartHParams, "head-count-0", `head_count`, setU32("llama.attention.head_count", 0)},
		{PartHParams, "head-count-kv-0", `head_count_kv`, setU32("llama.attention.head_count_kv", 0)},
		{PartHParams, "head-count-kv-3", `head_count`, setU32("llama.attention.head_count_kv", 3)},
		{PartHParams, "embd-not-multiple-of-heads", `head_count|embedding_length`, setU32("llama.attention.head_count", 7)},
		{PartHParams, "head-count-huge", `head_count`, setU32("llama.attention.head_count", 1<<31)},
		{PartHParams, "block-count-above-tensors", `block_count|blk\.5`, setU32("llama.block_count", 6)},
		{PartHParams, "block-count-0", `block_count`, setU32("llama.block_count", 0)},
		{PartHParams, "block-count-huge", `block_count`, setU32("llama.block_count", math.MaxUint32)},
		{PartHParams, "embedding-length-0", `embedding_length`, setU32("llama.embedding_length", 0)},
		{PartHParams, "embedding-length-wrong", `embedding_length|token_embd|shape`, setU32("llama.embedding_length", 128)},
		{PartHParams, "ff-length-wrong", `feed_forward_length|ffn_|shape`, setU32("llama.feed_forward_length", 100)},
		{PartHParams, "context-length-0", `context_length`, setU32("llama.context_length", 0)},
		{PartHParams, "rope-dims-huge", `rope\.dimension_count`, setU32("llama.rope.dimension_count", 1000)},
		{PartHParams, "rms-eps-nan", `layer_norm_rms_epsilon`, setF32("llama.attention.layer_norm_rms_epsilon", float32(math.NaN()))},
		{PartHParams, "rms-eps-negative", `layer_norm_rms_epsilon`, setF32("llama.attention.layer_norm_rms_epsilon", -1)},
		{PartHParams, "head-count-string", `head_count`, func(_ *gguf.File, b *gguf.Builder) error {
			b.Meta.Set("llama.attention.head_count", gguf.ValueOf("eight"))
			return nil
		}},
		{PartHParams, "arch-unknown", `architecture|nosucharch`, func(_ *gguf.File, b *gguf.Builder) error {
			b.Meta.Set("general.architecture", gguf.ValueOf("nosucharch"))
			return nil
		}},
		{PartHParams, "arch-missing", `architecture`, func(_ *gguf.File, b *gguf.Builder) error {
			b.Meta.Delete("general.architecture")
			return nil
		}},
		{PartHParams, "arch-not-string", `architecture`, func(_ *gguf.File, b *gguf.Builder) error {
			b.Meta.Set("general.architecture", gguf.ValueOf(uint32(7)))
			return nil
		}},
		// Token ids and tokenizer arrays against the vocabulary.
		{PartVocab, "bos-out-of-vocab", `bos_token_id`, setU32("tokenizer.ggml.bos_token_id", 99999)},
		{PartVocab, "eos-out-of-vocab", `eos_token_id`, setU32("tokenizer.ggml.eos_token_id", 1<<31)},
		{PartVocab, "scores-short", `tokenizer\.ggml\.scores`, func(_ *gguf.File, b *gguf.Builder) error {
			b.Meta.Set("tokenizer.ggml.scores", gguf.ArrayOf([]float32{0, 0, 0}))
			return nil
		}},
		{PartVocab, "token-type-short", `tokenizer\.ggml\.token_type`, func(_ *gguf.File, b *gguf.Builder) error {
			b.Meta.Set("tokenizer.ggml.token_type", gguf.ArrayOf([]int32{1}))
			return nil
		}},
		{PartVocab, "tokens-not-strings", `tokenizer\.ggml\.tokens`, func(_ *gguf.File, b *gguf.Builder) error {
			b.Meta.Set("tokenizer.ggml.tokens", gguf.ArrayOf(make([]uint32, 512)))
			return nil
		}},
		{PartVocab, "tokens-fewer-than-rows", `tokenizer\.ggml\.tokens|token_embd|vocab`, func(_ *gguf.File, b *gguf.Builder) error {
			toks := make([]string, 100)
			for i := range toks {
				toks[i] = fmt.Sprintf("t%d", i)
			}
			b.Meta.Set("tokenizer.ggml.tokens", gguf.ArrayOf(toks))
			b.Meta.Set("tokenizer.ggml.scores", gguf.ArrayOf(make([]float32, 100)))
			b.Meta.Set("tokenizer.ggml.token_type", gguf.ArrayOf(make([]int32, 100)))
			return nil
		}},
		// Tensors with wrong shapes, types or missing.
		{PartTensors, "tensor-shape-wrong", `blk\.0\.attn_q\.weight`, retensor(q, []int64{64, 32}, gguf.TypeF32)},
		{PartTensors, "tensor-shape-transposed", `blk\.0\.ffn_down\.weight`, retensor("blk.0.ffn_down.weight", []int64{64, 172}, gguf.TypeF32)},
		{PartTensors, "tensor-3d", `blk\.0\.attn_q\.weight`, retensor(q, []int64{64, 32, 2}, gguf.TypeF32)},
		{PartTensors, "token-embd-rows-wrong", `token_embd|vocab|tokens|output\.weight`, retensor("token_embd.weight", []int64{64, 100}, gguf.TypeF32)},
		{PartTensors, "tensor-type-i32", `blk\.0\.attn_q\.weight`, retensor(q, []int64{64, 64}, gguf.TypeI32)},
		{PartTensors, "norm-type-f16", `blk\.0\.attn_norm\.weight`, retensor("blk.0.attn_norm.weight", []int64{64}, gguf.TypeF16)},
		{PartTensors, "tensor-missing", `blk\.2\.ffn_up\.weight`, dropTensor("blk.2.ffn_up.weight")},
		{PartTensors, "output-norm-missing", `output_norm\.weight`, dropTensor("output_norm.weight")},
	}
	for _, e := range edits {
		b, err := edit(base, e.edit)
		if err != nil {
			return nil, fmt.Errorf("hostile: model-%s: %w", e.name, err)
		}
		part = e.part
		add(e.name, e.want, b)
	}
	part = PartFormat

	// Bit flips in the header, where nothing checks a sum: most land in token strings
	// or scores and leave a model that still loads.
	rng := rand.New(rand.NewPCG(20, 1))
	for i := range 8 {
		b := append([]byte(nil), base...)
		for range 1 + i {
			at := rng.IntN(l.dataOffset)
			b[at] ^= 1 << rng.IntN(8)
		}
		e := mayPass(bytesEntry(fmt.Sprintf("model-bitflip-%d", i), KindModel, ".gguf", ``, b))
		e.Part = PartFormat
		out = append(out, e)
	}
	return out, nil
}

// firstKey is the first metadata key of the walked file.
func firstKey(l *layout) string {
	first, at := "", math.MaxInt
	for k, p := range l.keyAt {
		if p < at {
			first, at = k, p
		}
	}
	return first
}

// infoFields4 is the offset of a tensor info's data-offset field.
func (l *layout) infoFields4(b []byte, name string) int {
	_, _, _, off := l.infoFields(b, name)
	return off
}

// edit applies fn to a Builder of base and encodes the result.
func edit(base []byte, fn func(f *gguf.File, b *gguf.Builder) error) ([]byte, error) {
	f, err := gguf.ParseBytes(base)
	if err != nil {
		return nil, err
	}
	b := f.Builder()
	if err := fn(f, b); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func setU32(key string, v uint32) func(*gguf.File, *gguf.Builder) error {
	return func(_ *gguf.File, b *gguf.Builder) error {
		b.Meta.Set(key, gguf.ValueOf(v))
		return nil
	}
}

func setF32(key string, v float32) func(*gguf.File, *gguf.Builder) error {
	return func(_ *gguf.File, b *gguf.Builder) error {
		b.Meta.Set(key, gguf.ValueOf(v))
		return nil
	}
}

// retensor gives the named tensor a new shape and type, with zero data of the new size.
func retensor(name string, dims []int64, typ gguf.Type) func(*gguf.File, *gguf.Builder) error {
	return func(_ *gguf.File, b *gguf.Builder) error {
		for i := range b.Tensors {
			t := &b.Tensors[i]
			if t.Name != name {
				continue
			}
			t.Dims, t.Type = dims, typ
			size, err := t.Size()
			if err != nil {
				return err
			}
			t.Data = gguf.DataBytes(make([]byte, size))
			return nil
		}
		return fmt.Errorf("no tensor %q", name)
	}
}

// dropTensor removes the named tensor.
func dropTensor(name string) func(*gguf.File, *gguf.Builder) error {
	return func(_ *gguf.File, b *gguf.Builder) error {
		for i, t := range b.Tensors {
			if t.Name == name {
				b.Tensors = append(b.Tensors[:i], b.Tensors[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("no tensor %q", name)
	}
}
