package convert

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/safetensors"
)

// Options says what Convert converts and how.
type Options struct {
	Dir string // Hugging Face checkpoint folder: config.json, *.safetensors, tokenizer files
	Out string // GGUF file to write (atomically)
	// Type is the type of the 2-D weights: "auto" (or "") keeps each tensor's
	// own float type (F64 becomes F32), or "f32", "f16", "bf16". 1-D tensors
	// (norms, biases) are F32 whatever the type, as llama.cpp's converter
	// writes them. Quantized types are made from such a file by quant.
	Type string
	Pre  string // tokenizer.ggml.pre instead of the recognised one
	Name string // general.name; default: config.json's _name_or_path or the folder's name
	// Progress, if set, is called after each tensor is written.
	Progress func(Progress)
}

// Progress reports a running conversion.
type Progress struct {
	Done, Total           int // tensors
	BytesDone, BytesTotal int64
	Name                  string // the tensor just written
}

// Summary describes a finished conversion.
type Summary struct {
	Class, Arch string // config.json's architectures[0], GGUF's architecture
	Tensors     int
	Bytes       int64 // tensor data written
	FileType    gguf.Type
	Tokenizer   TokenizerInfo
	Notes       []string // things the caller should know (tied output, ...)
}

// plan is a validated conversion, not yet written.
type plan struct {
	a       *arch
	h       *hparams
	ck      *checkpoint
	builder *gguf.Builder
	sum     *Summary
}

// Convert writes the GGUF model of a Hugging Face checkpoint. Everything is
// checked before anything is written (config keys, every tensor's presence,
// dtype and shape, the tokenizer), tensors are streamed a few megabytes at a
// time, and the output appears under o.Out only once complete.
func Convert(ctx context.Context, o Options) (*Summary, error) {
	p, err := newPlan(o)
	if err != nil {
		return nil, err
	}
	defer p.ck.Close()
	total := len(p.builder.Tensors)
	var bytesTotal int64
	for _, t := range p.builder.Tensors {
		n, _ := t.Size()
		bytesTotal += n
	}
	var done int
	var bytesDone int64
	for i := range p.builder.Tensors {
		t := &p.builder.Tensors[i]
		data := t.Data
		info := t.TensorInfo
		t.Data = func(w io.Writer) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := data(w); err != nil {
				return fmt.Errorf("convert: tensor %s: %w", info.Name, err)
			}
			n, _ := info.Size()
			done++
			bytesDone += n
			if o.Progress != nil {
				o.Progress(Progress{Done: done, Total: total, BytesDone: bytesDone, BytesTotal: bytesTotal, Name: info.Name})
			}
			return nil
		}
	}
	if err := p.builder.WriteFile(o.Out); err != nil {
		return nil, err
	}
	p.sum.Bytes = bytesTotal
	return p.sum, nil
}

// newPlan reads and checks everything Convert needs.
func newPlan(o Options) (p *plan, err error) {
	c, err := readConfig(o.Dir)
	if err != nil {
		return nil, err
	}
	class, err := c.architecture()
	if err != nil {
		return nil, err
	}
	a, err := archByClass(class)
	if err != nil {
		return nil, fmt.Errorf("convert: %s: %w", c.path, err)
	}
	h, err := readHparams(c, class)
	if err != nil {
		return nil, err
	}
	outType, err := parseType(o.Type)
	if err != nil {
		return nil, err
	}
	meta := &gguf.Metadata{}
	meta.Set("general.architecture", gguf.ValueOf(a.name))
	meta.Set("general.type", gguf.ValueOf("model"))
	meta.Set("general.name", gguf.ValueOf(modelName(o, c)))
	if err := a.keys(h, meta); err != nil {
		return nil, err
	}
	tok, tinfo, err := TokenizerMetadata(o.Dir, TokenizerOptions{Arch: a.name, VocabSize: h.vocab, Pre: o.Pre})
	if err != nil {
		return nil, err
	}

	ck, err := openCheckpoint(o.Dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ck.Close()
		}
	}()
	sum := &Summary{Class: class, Arch: a.name, Tokenizer: tinfo}
	if a == &gemma2Arch {
		// llama.cpp does not read query_pre_attn_scalar: it scales queries by
		// 1/sqrt(head_dim), or 1/sqrt(n_embd/n_head) for the 27B shape.
		if q, ok, err := c.optFloat("query_pre_attn_scalar"); err == nil && ok && int(q) != h.headDim {
			sum.Notes = append(sum.Notes, fmt.Sprintf("query_pre_attn_scalar %g differs from head_dim %d; llama.cpp uses the head dimension except for Gemma 2 27B's shape", q, h.headDim))
		}
	}
	var tensors []gguf.Tensor
	used := map[string]bool{}
	if a.extra != nil {
		extra, err := a.extra(h)
		if err != nil {
			return nil, err
		}
		for _, x := range extra {
			tensors = append(tensors, gguf.Tensor{
				TensorInfo: gguf.TensorInfo{Name: x.name, Dims: []int64{int64(len(x.values))}, Type: gguf.TypeF32},
				Data:       gguf.DataBytes(safetensors.Float32Bytes(x.values)),
			})
		}
	}
	var fileType gguf.Type = gguf.TypeF32
	for _, tm := range a.tensors(h) {
		sh, info, ok := ck.tensor(tm.hf)
		if !ok {
			if tm.optional && h.tied {
				sum.Notes = append(sum.Notes, "output tied to the token embeddings (tie_word_embeddings)")
				continue
			}
			if tm.optional {
				return nil, fmt.Errorf("convert: %s: tensor %s is missing, and config.json does not set tie_word_embeddings", o.Dir, tm.hf)
			}
			return nil, fmt.Errorf("convert: %s: tensor %s is missing (a %s checkpoint has it)", o.Dir, tm.hf, class)
		}
		used[tm.hf] = true
		if !slices.Equal(info.Shape, tm.shape) {
			return nil, fmt.Errorf("convert: %s: tensor %s has shape %v, config.json implies %v", sh.f.Name(), tm.hf, info.Shape, tm.shape)
		}
		src, ok := ggufTypeOf(info.DType)
		if !ok {
			return nil, fmt.Errorf("convert: %s: tensor %s has dtype %s; F32, F16, BF16 and F64 are converted", sh.f.Name(), tm.hf, info.DType)
		}
		typ := gguf.TypeF32
		if len(tm.shape) >= 2 {
			typ = src
			if outType != 0 {
				typ = outType
			}
			if tm.gguf != "token_embd.weight" || fileType == gguf.TypeF32 {
				fileType = typ
			}
		}
		tm, sh, info := tm, sh, info
		tensors = append(tensors, gguf.Tensor{
			TensorInfo: gguf.TensorInfo{Name: tm.gguf, Dims: tm.ggufDims(), Type: typ},
			Data:       func(w io.Writer) error { return writeTensor(w, sh, info, tm, typ) },
		})
	}
	for _, name := range ck.names() {
		if used[name] || ignored(a, name) {
			continue
		}
		sh, _, _ := ck.tensor(name)
		return nil, fmt.Errorf("convert: %s: tensor %s is not part of a %s model as ecotune converts it", sh.f.Name(), name, class)
	}
	meta.Set("general.file_type", gguf.ValueOf(fileTypeOf(fileType)))
	for k, v := range tok.All() {
		meta.Set(k, v)
	}
	sum.Tensors, sum.FileType = len(tensors), fileType
	b := &gguf.Builder{Meta: meta, Tensors: tensors}
	return &plan{a: a, h: h, ck: ck, builder: b, sum: sum}, nil
}

// ignored lists checkpoint tensors llama.cpp's converter drops: RoPE's cached
// inverse frequencies, and gemma2's lm_head (its output is the embeddings).
func ignored(a *arch, name string) bool {
	return strings.HasSuffix(name, ".rotary_emb.inv_freq") || a.noOutput && name == "lm_head.weight"
}

// parseType reads Options.Type; 0 means each tensor's own type.
func parseType(s string) (gguf.Type, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return 0, nil
	case "f32":
		return gguf.TypeF32, nil
	case "f16":
		return gguf.TypeF16, nil
	case "bf16":
		return gguf.TypeBF16, nil
	}
	return 0, fmt.Errorf("convert: type %q: want auto, f32, f16 or bf16 (quantized types are made from one of these)", s)
}

// fileTypeOf is general.file_type (llama_ftype) for a float weight type.
func fileTypeOf(t gguf.Type) uint32 {
	switch t {
	case gguf.TypeF16:
		return 1
	case gguf.TypeBF16:
		return 32
	}
	return 0
}

func modelName(o Options, c *config) string {
	if o.Name != "" {
		return o.Name
	}
	if s, ok := c.m["_name_or_path"].(string); ok && s != "" {
		return filepath.Base(s)
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return filepath.Base(o.Dir)
	}
	return filepath.Base(abs)
}
