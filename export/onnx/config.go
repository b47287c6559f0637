package onnx

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ecotune/ecotune/gguf"
)

// ropeStyle is how llama.cpp rotates a head's dimensions for an architecture
// (llama_model_rope_type).
type ropeStyle int

const (
	// ropeAdjacent (LLAMA_ROPE_TYPE_NORM) rotates pairs (2i, 2i+1). llama.cpp's
	// converter reorders the rows of llama's q and k so that this computes what
	// Hugging Face's rotate_half computes on the original rows.
	ropeAdjacent ropeStyle = iota
	// ropeHalves (LLAMA_ROPE_TYPE_NEOX) rotates pairs (i, i+D/2), as rotate_half.
	ropeHalves
)

// archDef is one supported architecture: its RoPE and the tensors a block or
// the model may have beyond llama's required set.
type archDef struct {
	name     string
	rope     ropeStyle
	optBlock []string // block tensors that may be present, without "blk.N."
	optModel []string // model tensors that may be present
}

// architectures is the table of what Export accepts; anything else is refused.
var architectures = []archDef{
	{name: "llama", rope: ropeAdjacent,
		optBlock: []string{"attn_q.bias", "attn_k.bias", "attn_v.bias", "attn_output.bias", "ffn_gate.bias", "ffn_up.bias", "ffn_down.bias"},
		optModel: []string{"output.weight", "rope_freqs.weight"}},
	{name: "qwen2", rope: ropeHalves,
		optBlock: []string{"attn_q.bias", "attn_k.bias", "attn_v.bias"},
		optModel: []string{"output.weight", "output.bias"}},
}

// Architectures returns the GGUF architectures Export supports.
func Architectures() []string {
	names := make([]string, len(architectures))
	for i, a := range architectures {
		names[i] = a.name
	}
	return names
}

// ErrUnsupported is wrapped by errors about models Export cannot express.
var ErrUnsupported = errors.New("not supported by the ONNX export")

// config is a decoder's hyper-parameters, as llama.cpp reads them.
type config struct {
	arch                    *archDef
	layers, embd, ff, vocab int64
	heads, headsKV, headDim int64
	eps                     float32
	ropeBase                float64
	ropeScale               float64 // llama.cpp's freq_scale: 1/factor of linear scaling
	ropeAttnFactor          float64 // multiplies cos and sin (1 unless set)
	tied                    bool    // output reuses token_embd
}

// readConfig reads and checks the hyper-parameters of f.
func readConfig(f *gguf.File) (*config, error) {
	name, err := f.Meta.String("general.architecture")
	if err != nil {
		return nil, err
	}
	c := &config{}
	for i := range architectures {
		if architectures[i].name == name {
			c.arch = &architectures[i]
		}
	}
	if c.arch == nil {
		return nil, fmt.Errorf("architecture %q: %w (supported: %s)", name, ErrUnsupported, strings.Join(Architectures(), ", "))
	}
	p := name + "."
	intKey := func(key string, dst *int64, def int64) {
		if err != nil {
			return
		}
		if !f.Meta.Has(p + key) {
			if def < 0 {
				err = fmt.Errorf("key %q is missing", p+key)
			}
			*dst = def
			return
		}
		if *dst, err = f.Meta.Int(p + key); err == nil && *dst <= 0 {
			err = fmt.Errorf("key %q is %d, want > 0", p+key, *dst)
		}
	}
	intKey("block_count", &c.layers, -1)
	intKey("embedding_length", &c.embd, -1)
	intKey("feed_forward_length", &c.ff, -1)
	intKey("attention.head_count", &c.heads, -1)
	intKey("attention.head_count_kv", &c.headsKV, c.heads)
	if err != nil {
		return nil, err
	}
	var keyLen, valLen, rot, experts int64
	intKey("attention.key_length", &keyLen, c.embd/c.heads)
	intKey("attention.value_length", &valLen, c.embd/c.heads)
	intKey("rope.dimension_count", &rot, keyLen)
	if f.Meta.Has(p + "expert_count") {
		experts, _ = f.Meta.Int(p + "expert_count")
	}
	if err != nil {
		return nil, err
	}
	switch {
	case experts > 0:
		return nil, fmt.Errorf("%d experts: mixture-of-experts models are %w", experts, ErrUnsupported)
	case keyLen != valLen:
		return nil, fmt.Errorf("key length %d differs from value length %d: %w", keyLen, valLen, ErrUnsupported)
	case rot != keyLen:
		return nil, fmt.Errorf("rope.dimension_count %d differs from the head dimension %d: partial rotation is %w", rot, keyLen, ErrUnsupported)
	case keyLen%2 != 0:
		return nil, fmt.Errorf("odd head dimension %d", keyLen)
	case c.heads%c.headsKV != 0:
		return nil, fmt.Errorf("%d heads are not a multiple of %d KV heads", c.heads, c.headsKV)
	}
	c.headDim = keyLen
	eps, err := f.Meta.Float(p + "attention.layer_norm_rms_epsilon")
	if err != nil {
		return nil, err
	}
	c.eps = float32(eps)

	c.ropeBase, c.ropeScale, c.ropeAttnFactor = 10000, 1, 1
	floatKey := func(key string, dst *float64) error {
		if !f.Meta.Has(p + key) {
			return nil
		}
		v, err := f.Meta.Float(p + key)
		*dst = v
		return err
	}
	var factor float64
	scaling := "linear"
	if f.Meta.Has(p + "rope.scaling.type") {
		if scaling, err = f.Meta.String(p + "rope.scaling.type"); err != nil {
			return nil, err
		}
	}
	for _, e := range []error{
		floatKey("rope.freq_base", &c.ropeBase),
		floatKey("rope.scale_linear", &factor),
		floatKey("rope.scaling.factor", &factor),
		floatKey("rope.scaling.attn_factor", &c.ropeAttnFactor),
	} {
		if e != nil {
			return nil, e
		}
	}
	switch scaling {
	case "none":
	case "linear":
		if factor != 0 {
			c.ropeScale = 1 / factor
		}
	default:
		return nil, fmt.Errorf("rope scaling %q is %w (only linear or none)", scaling, ErrUnsupported)
	}
	return c, nil
}
