package convert

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ecotune/ecotune/gguf"
)

// dim is a symbolic tensor dimension, resolved against hparams.
type dim int

const (
	dEmbd  dim = iota // hidden_size
	dVocab            // vocab_size
	dFF               // intermediate_size
	dFF2              // 2·intermediate_size (phi3's fused gate_up_proj)
	dQ                // heads·head_dim
	dKV               // kv heads·head_dim
	dQKV              // q, k and v rows of a fused projection
)

// op is the layout fix a tensor needs between the two formats.
type op int

const (
	opNone     op = iota
	opPermuteQ    // llama's RoPE row order, in n_head heads
	opPermuteK    // the same in n_head_kv heads
	opPlusOne     // gemma's norms: GGUF stores weight+1, HF stores weight
)

// entry names one tensor of an architecture in both formats: GGUF's name and
// HF's (without the block prefixes), HF's (PyTorch, row-major) shape, and the
// fix between them. Name maps are data; the fixes are functions in weights.go.
type entry struct {
	gguf, hf string
	shape    []dim
	op       op
}

func e(gguf, hf string, o op, shape ...dim) entry {
	return entry{gguf: gguf, hf: hf, shape: shape, op: o}
}

// arch describes one architecture as llama.cpp's converter writes it and
// transformers loads it.
type arch struct {
	name      string   // general.architecture
	classes   []string // config.json architectures[0] values
	modelType string   // config.json model_type written by ExportHF
	// input, block and output are the tensors before, in each and after the blocks.
	input, block, output []entry
	// tiedOutput marks output.weight as absent when embeddings are tied.
	tiedOutput bool
	// noOutput: the checkpoint's lm_head is dropped (gemma2 always ties).
	noOutput bool
	// bpeOnly: the tokenizer is read from tokenizer.json even beside a tokenizer.model.
	bpeOnly bool
	// keys writes the hyper-parameters llama.cpp reads; it runs after the common ones.
	keys func(h *hparams, m *gguf.Metadata) error
	// extra returns tensors computed from config.json (rope factors).
	extra func(h *hparams) ([]extraTensor, error)
	// hfConfig adds the architecture's own config.json keys on export.
	hfConfig func(h *hparams, c map[string]any)
}

// archs is the explicit table of architectures, the trainer's.
var archs = []*arch{&llamaArch, &qwen2Arch, &phi2Arch, &phi3Arch, &gemma2Arch}

// Architectures returns the Hugging Face class names Convert accepts.
func Architectures() []string {
	var names []string
	for _, a := range archs {
		names = append(names, a.classes...)
	}
	return names
}

func archByClass(class string) (*arch, error) {
	for _, a := range archs {
		if slices.Contains(a.classes, class) {
			return a, nil
		}
	}
	return nil, fmt.Errorf("architecture %q is not supported (known: %s)", class, strings.Join(Architectures(), ", "))
}

func archByName(name string) (*arch, error) {
	for _, a := range archs {
		if a.name == name {
			return a, nil
		}
	}
	var known []string
	for _, a := range archs {
		known = append(known, a.name)
	}
	return nil, fmt.Errorf("architecture %q has no Hugging Face export (known: %s)", name, strings.Join(known, ", "))
}

// tensorMap is one resolved tensor: both names, HF's shape, and the fix.
type tensorMap struct {
	gguf, hf string
	shape    []int64 // HF order
	op       op
	heads    int // for the permutations
	optional bool
}

// ggufDims is the shape in ggml's order (row width first).
func (t tensorMap) ggufDims() []int64 {
	d := slices.Clone(t.shape)
	slices.Reverse(d)
	return d
}

// tensors lists every tensor of a model with hyper-parameters h, in the
// order they are written.
func (a *arch) tensors(h *hparams) []tensorMap {
	var out []tensorMap
	add := func(en entry, gguf, hf string) {
		t := tensorMap{gguf: gguf, hf: hf, op: en.op}
		for _, d := range en.shape {
			t.shape = append(t.shape, h.size(d))
		}
		switch en.op {
		case opPermuteQ:
			t.heads = h.heads
		case opPermuteK:
			t.heads = h.headsKV
		}
		out = append(out, t)
	}
	for _, en := range a.input {
		add(en, en.gguf, en.hf)
	}
	for i := range h.layers {
		for _, en := range a.block {
			add(en, fmt.Sprintf("blk.%d.%s", i, en.gguf), fmt.Sprintf("model.layers.%d.%s", i, en.hf))
		}
	}
	for _, en := range a.output {
		add(en, en.gguf, en.hf)
		if en.gguf == "output.weight" && a.tiedOutput {
			out[len(out)-1].optional = true
		}
	}
	return out
}

// MaxVocab bounds the vocabulary a checkpoint may declare, so that a hostile
// config.json or tokenizer.json cannot make the converter allocate without
// limit before the weights are checked (the largest real vocabularies have
// about 260,000 tokens).
const MaxVocab = 1 << 22

// hparams are the dimensions every architecture has.
type hparams struct {
	class                                   string
	embd, layers, heads, headsKV, ff, vocab int
	context                                 int
	headDim                                 int
	headDimSet                              bool // config.json gives head_dim
	tied                                    bool
	cfg                                     *config
}

func (h *hparams) size(d dim) int64 {
	switch d {
	case dEmbd:
		return int64(h.embd)
	case dVocab:
		return int64(h.vocab)
	case dFF:
		return int64(h.ff)
	case dFF2:
		return 2 * int64(h.ff)
	case dQ:
		return int64(h.heads * h.headDim)
	case dKV:
		return int64(h.headsKV * h.headDim)
	case dQKV:
		return int64((h.heads + 2*h.headsKV) * h.headDim)
	}
	panic(fmt.Sprintf("convert: unknown dimension %d", d))
}

// readHparams resolves the common dimensions under transformers' names.
func readHparams(c *config, class string) (*hparams, error) {
	h := &hparams{class: class, cfg: c}
	var err error
	if h.embd, err = c.positive("hidden_size", "n_embd", "d_model"); err != nil {
		return nil, err
	}
	if h.layers, err = c.positive("num_hidden_layers", "n_layer", "num_layers"); err != nil {
		return nil, err
	}
	if h.heads, err = c.positive("num_attention_heads", "n_head"); err != nil {
		return nil, err
	}
	kv, ok, err := c.optInt("num_key_value_heads", "n_head_kv")
	if err != nil {
		return nil, err
	}
	h.headsKV = h.heads
	if ok && kv > 0 {
		h.headsKV = kv
	}
	if h.heads%h.headsKV != 0 {
		return nil, fmt.Errorf("convert: %s: num_attention_heads %d is not a multiple of num_key_value_heads %d", c.path, h.heads, h.headsKV)
	}
	if h.ff, err = c.positive("intermediate_size", "n_inner"); err != nil {
		return nil, err
	}
	if h.vocab, err = c.positive("vocab_size"); err != nil {
		return nil, err
	}
	if h.vocab > MaxVocab {
		return nil, fmt.Errorf("convert: %s: vocab_size %d is more than %d", c.path, h.vocab, MaxVocab)
	}
	if h.context, _, err = c.optInt("max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length"); err != nil {
		return nil, err
	}
	hd, ok, err := c.optInt("head_dim")
	if err != nil {
		return nil, err
	}
	if ok && hd > 0 {
		h.headDim, h.headDimSet = hd, true
	} else {
		if h.embd%h.heads != 0 {
			return nil, fmt.Errorf("convert: %s: hidden_size %d is not a multiple of num_attention_heads %d and head_dim is not given", c.path, h.embd, h.heads)
		}
		h.headDim = h.embd / h.heads
	}
	if h.tied, err = c.bool("tie_word_embeddings", false); err != nil {
		return nil, err
	}
	return h, nil
}

// extraTensor is a tensor computed from config.json rather than read.
type extraTensor struct {
	name   string
	values []float32
}
