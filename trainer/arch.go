package trainer

import (
	"fmt"

	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
)

// Dim names one dimension of a tensor in terms of a model's hyper-parameters.
type Dim int

// Dimensions a TensorSpec can name.
const (
	DimEmbd     Dim = iota // HParams.Embd
	DimVocab               // HParams.Vocab
	DimFF                  // HParams.FF
	DimQ                   // HParams.Heads × HParams.HeadDim
	DimKV                  // HParams.HeadsKV × HParams.HeadDim
	DimQKV                 // DimQ + 2·DimKV: Q, K and V projections fused into one matrix
	DimFF2                 // 2·HParams.FF: gate and up projections fused into one matrix
	DimRopeHalf            // HParams.RopeDims/2: one factor per rotated pair
)

func (d Dim) size(hp HParams) int {
	switch d {
	case DimEmbd:
		return hp.Embd
	case DimVocab:
		return hp.Vocab
	case DimFF:
		return hp.FF
	case DimQ:
		return hp.Heads * hp.HeadDim
	case DimKV:
		return hp.HeadsKV * hp.HeadDim
	case DimQKV:
		return (hp.Heads + 2*hp.HeadsKV) * hp.HeadDim
	case DimFF2:
		return 2 * hp.FF
	case DimRopeHalf:
		return hp.RopeDims / 2
	}
	return -1
}

// TensorSpec is one GGUF tensor an architecture reads.
type TensorSpec struct {
	Name     string // GGUF name; in Arch.Block the part after "blk.N."
	Dims     []Dim  // shape in ggml order (ne[0] first)
	Optional bool   // absent in some files (biases, a tied output)
	LoRA     string // target-module name when LoRA may adapt this weight ("attn_q"), else ""
}

// NormKind is the normalisation an architecture uses.
type NormKind int

// Normalisations.
const (
	NormRMS   NormKind = iota // x / rms(x) · w (Llama, Qwen2, Phi-3, Gemma 2)
	NormLayer                 // (x - mean) / std · w + b (Phi-2)
)

// Arch describes one architecture: which tensors it reads and how a block is built
// from the shared pieces in blocks.go. Every value lives in the table in archs.go.
type Arch struct {
	Name     string       // general.architecture
	Globals  []TensorSpec // tensors outside the blocks
	Block    []TensorSpec // tensors of each block, named after "blk.N."
	Norm     NormKind
	RopeMode int // ggml.RopeNormal or ggml.RopeNeoX
	// HFNames maps Hugging Face module names to this architecture's GGUF targets where
	// they differ from the common ones (Phi-2's fc1 is ffn_up); "" marks a name the
	// architecture does not have.
	HFNames map[string]string
	// Fused maps a target to the fused weight that holds it in files whose converter
	// fused it (attn_q into attn_qkv); llama.cpp's adapter format can only adapt the
	// whole fused weight.
	Fused map[string]string
	// Check rejects files whose optional tensors make no model (neither fused nor
	// separate Q/K/V); nil accepts every file that has the required tensors.
	Check func(m *Model) error
	// ReadHParams reads the architecture's own hyper-parameters into hp (nil: none).
	ReadHParams func(meta *gguf.Metadata, hp *HParams) error
	// EmbedScale multiplies the token embeddings by √Embd (Gemma).
	EmbedScale bool
	// Layer returns block l applied to the residual stream x.
	Layer func(b *builder, l int, x *ggml.Tensor) *ggml.Tensor
}

// Well-known tensor names the shared blocks refer to.
const (
	tokEmbd    = "token_embd.weight"
	outputNorm = "output_norm.weight"
	outputW    = "output.weight"
	outputB    = "output.bias"

	ropeFreqs        = "rope_freqs.weight"
	ropeFactorsLong  = "rope_factors_long.weight"
	ropeFactorsShort = "rope_factors_short.weight"
)

// lookupArch returns the table entry for name.
func lookupArch(name string) (*Arch, error) {
	for _, a := range architectures() {
		if a.Name == name {
			return a, nil
		}
	}
	var names []string
	for _, a := range architectures() {
		names = append(names, a.Name)
	}
	return nil, fmt.Errorf("architecture %q is not supported (supported: %v)", name, names)
}

// loraTargets lists the target-module names arch lets LoRA adapt, in block order.
func (a *Arch) loraTargets() []string {
	var out []string
	for _, s := range a.Block {
		if s.LoRA != "" {
			out = append(out, s.LoRA)
		}
	}
	return out
}
