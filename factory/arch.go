package factory

import (
	"fmt"
	"strings"

	"github.com/ecotune/ecotune/gguf"
)

// dim is a symbolic tensor dimension, resolved against a Spec.
type dim int

const (
	dEmbd  dim = iota // n_embd
	dVocab            // vocabulary size
	dFF               // n_ff
	dFF2              // 2·n_ff (a fused gate+up projection)
	dQ                // n_head·head_dim
	dKV               // n_head_kv·head_dim
	dQKV              // n_head·head_dim + 2·n_head_kv·head_dim (fused Q, K, V)
)

// initKind says how a tensor is filled.
type initKind int

const (
	normal initKind = iota // N(0, Spec.Std²)
	ones                   // norm weights
	zeros                  // biases
)

// tensorDef is one tensor of an architecture: its name (without the "blk.N."
// prefix for block tensors), its ggml shape (ne: row width first) and its init.
type tensorDef struct {
	name  string
	shape []dim
	init  initKind
}

func t(name string, init initKind, shape ...dim) tensorDef {
	return tensorDef{name: name, shape: shape, init: init}
}

// normKind is the normalization an architecture uses, which decides the
// epsilon key it needs.
type normKind int

const (
	rmsNorm   normKind = iota // %s.attention.layer_norm_rms_epsilon
	layerNorm                 // %s.attention.layer_norm_epsilon
)

// archDef describes one architecture as llama.cpp's loader expects it
// (src/models/<arch>.cpp, load_arch_hparams and load_arch_tensors).
type archDef struct {
	name     string
	norm     normKind
	normEps  float32
	ropeBase float64
	// ropeFraction is the share of a head rotary embedding covers by default
	// (1 for all; phi2 rotates part of each head).
	ropeFraction float64
	// freeHeadDim allows a head dimension other than n_embd/n_head.
	freeHeadDim bool
	// fullRope requires n_rot = head_dim (llama's loader checks it).
	fullRope bool
	// input are the tensors before the blocks, output those after; optional
	// names the output tensors dropped when Spec.TiedEmbeddings is set (the
	// loader then reuses token_embd).
	input, block, output []tensorDef
	optional             map[string]bool
	// keys adds architecture-specific metadata after the common keys.
	keys func(s Spec, m *gguf.Metadata)
}

// architectures is the explicit table of architectures Init can write.
var architectures = []*archDef{&llamaArch, &qwen2Arch, &phi2Arch, &phi3Arch, &gemma2Arch}

// Architectures returns the names Init accepts for Spec.Arch.
func Architectures() []string {
	names := make([]string, len(architectures))
	for i, a := range architectures {
		names[i] = a.name
	}
	return names
}

func lookupArch(name string) (*archDef, error) {
	for _, a := range architectures {
		if a.name == name {
			return a, nil
		}
	}
	return nil, fmt.Errorf("factory: unknown architecture %q; known: %s", name, strings.Join(Architectures(), ", "))
}
