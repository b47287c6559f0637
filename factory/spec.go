package factory

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ecotune/ecotune/gguf"
)

// Defaults for the Spec fields left zero.
const (
	DefaultStd     = 0.02 // standard deviation of the weights' normal init
	DefaultContext = 512  // training context written to %s.context_length
)

// Spec describes a random-init model. Zero fields take defaults: HeadsKV =
// Heads, HeadDim = Embd/Heads, RopeDim = the architecture's share of HeadDim,
// RopeBase = the architecture's, Context = DefaultContext, Std = DefaultStd,
// Type = F32.
type Spec struct {
	Arch    string // one of Architectures()
	Embd    int    // n_embd
	Layers  int    // n_layer
	Heads   int    // n_head
	HeadsKV int    // n_head_kv (grouped-query attention when < Heads)
	FF      int    // n_ff, the MLP's hidden width
	Context int    // n_ctx_train
	// HeadDim sets the head dimension apart from Embd/Heads (llama, gemma2 only).
	HeadDim int
	// RopeDim is the number of rotated dimensions per head (n_rot).
	RopeDim  int
	RopeBase float64
	// Type is the type of the weight matrices: gguf.TypeF32 or gguf.TypeF16.
	// 1-D tensors (norms, biases) are F32 either way, as llama.cpp's converter writes them.
	Type gguf.Type
	// VocabFile is a GGUF file (a model or llama.cpp's models/ggml-vocab-*.gguf)
	// whose tokenizer.* metadata is copied; the vocabulary size is its token count.
	VocabFile string
	// VocabSize, used only without VocabFile, gives a model with no tokenizer:
	// llama-quantize and gguf readers accept it, inference tools do not.
	VocabSize int
	// TiedEmbeddings leaves out output.weight, so the model reuses
	// token_embd.weight (llama, qwen2, phi3; gemma2 is always tied).
	TiedEmbeddings bool
	// Weights, if set, is a GGUF whose tensors replace the random ones: every tensor
	// of the model must be there with the same name and shape (any type; converted
	// to the spec's). It lets a trained model travel without its tokenizer, which
	// VocabFile then supplies.
	Weights string
	Seed    uint64
	Std     float64
	Name    string // general.name; default "ecotune-<arch>-random"
}

// ParseDims sets the dimensions named in s, a comma-separated list of
// key=value pairs with llama.cpp's hyper-parameter names: n_embd, n_layer,
// n_head, n_head_kv, n_ff, n_ctx, head_dim, n_rot, rope_base.
// Example: "n_embd=256,n_layer=2,n_head=4,n_head_kv=2,n_ff=768".
func ParseDims(s string, spec *Spec) error {
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("factory: dims: %q is not key=value", kv)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "rope_base" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 0 {
				return fmt.Errorf("factory: dims: rope_base=%q: want a positive number", v)
			}
			spec.RopeBase = f
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("factory: dims: %s=%q: want a positive integer", k, v)
		}
		switch k {
		case "n_embd":
			spec.Embd = n
		case "n_layer":
			spec.Layers = n
		case "n_head":
			spec.Heads = n
		case "n_head_kv":
			spec.HeadsKV = n
		case "n_ff":
			spec.FF = n
		case "n_ctx":
			spec.Context = n
		case "head_dim":
			spec.HeadDim = n
		case "n_rot":
			spec.RopeDim = n
		default:
			return fmt.Errorf("factory: dims: unknown key %q (known: n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx, head_dim, n_rot, rope_base)", k)
		}
	}
	return nil
}

// Validate reports the first problem with s that needs no file to find: an
// unknown architecture, inconsistent dimensions, an unsupported weight type or
// no vocabulary at all. Init checks the vocabulary file itself.
func (s Spec) Validate() error {
	a, err := lookupArch(s.Arch)
	if err != nil {
		return err
	}
	_, err = s.resolve(a)
	return err
}

// resolve fills defaults and checks s against a.
func (s Spec) resolve(a *archDef) (Spec, error) {
	if s.Embd <= 0 || s.Layers <= 0 || s.Heads <= 0 || s.FF <= 0 {
		return s, fmt.Errorf("factory: n_embd, n_layer, n_head and n_ff must be positive (got %d, %d, %d, %d)", s.Embd, s.Layers, s.Heads, s.FF)
	}
	if s.HeadsKV == 0 {
		s.HeadsKV = s.Heads
	}
	if s.HeadsKV < 0 || s.Heads%s.HeadsKV != 0 {
		return s, fmt.Errorf("factory: n_head %d is not a multiple of n_head_kv %d", s.Heads, s.HeadsKV)
	}
	if s.HeadDim == 0 {
		if s.Embd%s.Heads != 0 {
			return s, fmt.Errorf("factory: n_embd %d is not a multiple of n_head %d", s.Embd, s.Heads)
		}
		s.HeadDim = s.Embd / s.Heads
	} else if s.HeadDim != s.Embd/s.Heads || s.Embd%s.Heads != 0 {
		if !a.freeHeadDim {
			return s, fmt.Errorf("factory: %s needs head_dim = n_embd/n_head", a.name)
		}
	}
	if s.RopeDim == 0 {
		s.RopeDim = int(float64(s.HeadDim)*a.ropeFraction) &^ 1
	}
	if s.RopeDim <= 0 || s.RopeDim%2 != 0 || s.RopeDim > s.HeadDim {
		return s, fmt.Errorf("factory: n_rot %d must be even and within the head dimension %d", s.RopeDim, s.HeadDim)
	}
	if a.fullRope && s.RopeDim != s.HeadDim {
		return s, fmt.Errorf("factory: %s rotates whole heads: n_rot must equal head_dim %d", a.name, s.HeadDim)
	}
	if s.RopeBase == 0 {
		s.RopeBase = a.ropeBase
	}
	if s.Context == 0 {
		s.Context = DefaultContext
	}
	if s.Std == 0 {
		s.Std = DefaultStd
	}
	if s.Std < 0 {
		return s, fmt.Errorf("factory: negative init std %g", s.Std)
	}
	switch s.Type {
	case gguf.TypeF32, gguf.TypeF16:
	default:
		return s, fmt.Errorf("factory: weight type %s: want f32 or f16 (quantize the result with quant.QuantizeModel)", s.Type)
	}
	if s.VocabFile == "" && s.VocabSize <= 0 {
		return s, fmt.Errorf("factory: no vocabulary: set a tokenizer GGUF (e.g. third_party/llama.cpp/models/ggml-vocab-llama-spm.gguf) or a vocabulary size")
	}
	if s.Name == "" {
		s.Name = "ecotune-" + a.name + "-random"
	}
	return s, nil
}

// size resolves a symbolic dimension.
func (s Spec) size(d dim, vocab int) int64 {
	switch d {
	case dEmbd:
		return int64(s.Embd)
	case dVocab:
		return int64(vocab)
	case dFF:
		return int64(s.FF)
	case dFF2:
		return 2 * int64(s.FF)
	case dQ:
		return int64(s.Heads * s.HeadDim)
	case dKV:
		return int64(s.HeadsKV * s.HeadDim)
	case dQKV:
		return int64((s.Heads + 2*s.HeadsKV) * s.HeadDim)
	}
	panic(fmt.Sprintf("factory: unknown dim %d", d))
}
