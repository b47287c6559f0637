package factory

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/quant"
)

// Init writes a random-init model described by spec to path (atomically).
// Tensor data is generated while the file is written, one tensor at a time.
func Init(spec Spec, path string) error {
	b, err := Build(spec)
	if err != nil {
		return err
	}
	return b.WriteFile(path)
}

// Build returns a gguf.Builder for the model spec describes: metadata with the
// hyper-parameter keys llama.cpp reads for the architecture, the tokenizer
// copied from spec.VocabFile, and every tensor the architecture's loader
// expects, generated when the builder writes. Each tensor's values depend only
// on spec.Seed and the tensor's name.
func Build(spec Spec) (*gguf.Builder, error) {
	a, err := lookupArch(spec.Arch)
	if err != nil {
		return nil, err
	}
	s, err := spec.resolve(a)
	if err != nil {
		return nil, err
	}
	tok, vocab, err := tokenizer(s)
	if err != nil {
		return nil, err
	}
	meta := metadata(a, s, vocab)
	for k, v := range tok.All() {
		meta.Set(k, v)
	}

	var tensors []gguf.Tensor
	add := func(name string, d tensorDef) {
		info := gguf.TensorInfo{Name: name, Type: gguf.TypeF32}
		for _, x := range d.shape {
			info.Dims = append(info.Dims, s.size(x, vocab))
		}
		if len(info.Dims) >= 2 {
			info.Type = s.Type
		}
		tensors = append(tensors, gguf.Tensor{TensorInfo: info, Data: tensorData(s, info, d.init)})
	}
	for _, d := range a.input {
		add(d.name, d)
	}
	for i := range s.Layers {
		for _, d := range a.block {
			add(fmt.Sprintf("blk.%d.%s", i, d.name), d)
		}
	}
	for _, d := range a.output {
		if s.TiedEmbeddings && a.optional[d.name] {
			continue
		}
		add(d.name, d)
	}
	if s.Weights != "" {
		if err := useWeights(s.Weights, tensors); err != nil {
			return nil, err
		}
	}
	return &gguf.Builder{Version: gguf.Version, Meta: meta, Tensors: tensors}, nil
}

// useWeights points every tensor's data at the same-named tensor of the GGUF at
// path, converted to the tensor's type when the writer asks for it.
func useWeights(path string, tensors []gguf.Tensor) error {
	// Checked up front, so a wrong file fails before anything is written.
	f, err := gguf.Open(path)
	if err != nil {
		return fmt.Errorf("factory: weights: %w", err)
	}
	for _, t := range tensors {
		src, ok := f.Tensor(t.Name)
		if !ok {
			f.Close()
			return fmt.Errorf("factory: weights %s: no tensor %s", path, t.Name)
		}
		if !slices.Equal(src.Dims, t.Dims) {
			f.Close()
			return fmt.Errorf("factory: weights %s: tensor %s has shape %v, the spec needs %v", path, t.Name, src.Dims, t.Dims)
		}
	}
	f.Close()
	for i := range tensors {
		dst := tensors[i].TensorInfo
		// The file is opened per tensor: the writer calls these one after another, and
		// a Builder holds no open files between calls.
		tensors[i].Data = func(w io.Writer) error {
			f, err := gguf.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			src, _ := f.Tensor(dst.Name)
			data, err := f.Data(dst.Name)
			if err != nil {
				return err
			}
			if src.Type != dst.Type {
				n, _ := dst.Elements()
				x, err := quant.Dequantize(ggml.Type(src.Type), data, int(n))
				if err != nil {
					return fmt.Errorf("factory: weights %s: tensor %s: %w", path, dst.Name, err)
				}
				if data, err = quant.Quantize(ggml.Type(dst.Type), x, int(dst.Dims[0])); err != nil {
					return fmt.Errorf("factory: weights %s: tensor %s: %w", path, dst.Name, err)
				}
			}
			_, err = w.Write(data)
			return err
		}
	}
	return nil
}

// fileType is general.file_type for the weight type: llama.cpp's
// LLAMA_FTYPE_ALL_F32 or LLAMA_FTYPE_MOSTLY_F16.
func fileType(t gguf.Type) uint32 {
	if t == gguf.TypeF16 {
		return uint32(quant.FileTypeF16)
	}
	return uint32(quant.FileTypeF32)
}

// metadata writes the keys in the order llama.cpp's converter does: general
// keys, then the architecture's hyper-parameters.
func metadata(a *archDef, s Spec, vocab int) *gguf.Metadata {
	m := &gguf.Metadata{}
	p := a.name + "."
	m.Set("general.architecture", gguf.ValueOf(a.name))
	m.Set("general.type", gguf.ValueOf("model"))
	m.Set("general.name", gguf.ValueOf(s.Name))
	m.Set(p+"block_count", gguf.ValueOf(uint32(s.Layers)))
	m.Set(p+"context_length", gguf.ValueOf(uint32(s.Context)))
	m.Set(p+"embedding_length", gguf.ValueOf(uint32(s.Embd)))
	m.Set(p+"feed_forward_length", gguf.ValueOf(uint32(s.FF)))
	m.Set(p+"attention.head_count", gguf.ValueOf(uint32(s.Heads)))
	m.Set(p+"attention.head_count_kv", gguf.ValueOf(uint32(s.HeadsKV)))
	m.Set(p+"rope.freq_base", gguf.ValueOf(float32(s.RopeBase)))
	switch a.norm {
	case rmsNorm:
		m.Set(p+"attention.layer_norm_rms_epsilon", gguf.ValueOf(a.normEps))
	case layerNorm:
		m.Set(p+"attention.layer_norm_epsilon", gguf.ValueOf(a.normEps))
	}
	if s.HeadDim*s.Heads != s.Embd {
		m.Set(p+"attention.key_length", gguf.ValueOf(uint32(s.HeadDim)))
		m.Set(p+"attention.value_length", gguf.ValueOf(uint32(s.HeadDim)))
	}
	m.Set(p+"rope.dimension_count", gguf.ValueOf(uint32(s.RopeDim)))
	m.Set(p+"vocab_size", gguf.ValueOf(uint32(vocab)))
	if a.keys != nil {
		a.keys(s, m)
	}
	m.Set("general.file_type", gguf.ValueOf(fileType(s.Type)))
	return m
}

// tokenizer returns the tokenizer.* keys of s.VocabFile and its token count, or
// no keys and s.VocabSize without a file.
func tokenizer(s Spec) (*gguf.Metadata, int, error) {
	m := &gguf.Metadata{}
	if s.VocabFile == "" {
		return m, s.VocabSize, nil
	}
	f, err := gguf.Open(s.VocabFile)
	if err != nil {
		return nil, 0, fmt.Errorf("factory: vocabulary: %w", err)
	}
	defer f.Close()
	for k, v := range f.Meta.All() {
		if strings.HasPrefix(k, "tokenizer.") {
			m.Set(k, v)
		}
	}
	tokens, ok := m.Get("tokenizer.ggml.tokens")
	if !ok || tokens.Len() == 0 {
		return nil, 0, fmt.Errorf("factory: vocabulary: %s has no tokenizer.ggml.tokens; use a model or a llama.cpp models/ggml-vocab-*.gguf file", s.VocabFile)
	}
	return m, tokens.Len(), nil
}

// tensorData generates a tensor when the writer asks for it.
func tensorData(s Spec, info gguf.TensorInfo, init initKind) gguf.DataFunc {
	return func(w io.Writer) error {
		n, _ := info.Elements()
		x := make([]float32, n)
		switch init {
		case ones:
			for i := range x {
				x[i] = 1
			}
		case normal:
			r := rand.New(rand.NewPCG(s.Seed, nameHash(info.Name)))
			for i := range x {
				x[i] = float32(r.NormFloat64() * s.Std)
			}
		}
		var data []byte
		if info.Type == gguf.TypeF32 {
			data = make([]byte, 4*len(x))
			for i, v := range x {
				binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
			}
		} else {
			var err error
			if data, err = quant.Quantize(ggml.Type(info.Type), x, int(info.Dims[0])); err != nil {
				return err
			}
		}
		_, err := w.Write(data)
		return err
	}
}

// nameHash seeds a tensor's generator from its name, so a tensor's values do
// not depend on which other tensors the model has.
func nameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}
