package trainer

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
)

// ErrUnknownArch is matched by CheckModel's error for an architecture outside the
// table in archs.go: llama.cpp may still run such a model, so inference callers may
// go on while training cannot.
var ErrUnknownArch = errors.New("architecture not supported")

// unknownArchError is lookupArch's error, matching ErrUnknownArch.
type unknownArchError struct{ error }

func (unknownArchError) Is(target error) bool { return target == ErrUnknownArch }

// CheckParts selects what CheckModel validates beyond the GGUF format itself, which
// gguf.Open has already checked.
type CheckParts struct {
	Arch  bool // hyper-parameters, and every tensor's presence, shape and type against them
	Vocab bool // the tokenizer's arrays and special token ids against the vocabulary
}

// CheckAll validates everything a model needs to run.
var CheckAll = CheckParts{Arch: true, Vocab: true}

// CheckModel validates an opened model in Go, without allocating its weights: what
// LoadModel checks before it copies them, and what llama.cpp's loader would otherwise
// meet in C, where a contradiction (a head count of 0, a block count above the blocks
// present, a shape the hyper-parameters disagree with) is an assert that aborts the
// process rather than an error. Errors name the key or tensor at fault; an
// architecture ecotune does not know matches ErrUnknownArch, after the vocabulary
// check, so that callers that can go on have had the rest checked.
func CheckModel(f *gguf.File, parts CheckParts) error {
	// The vocabulary first: a vocabulary that disagrees with the embedding's rows is
	// better told as that than as the output matrix's shape.
	if parts.Vocab {
		if err := checkVocab(f); err != nil {
			return err
		}
	}
	if parts.Arch {
		return checkArch(f)
	}
	return nil
}

// checkArch reads the hyper-parameters and checks each tensor the architecture names.
func checkArch(f *gguf.File) error {
	name, err := f.Meta.String("general.architecture")
	if err != nil {
		return fmt.Errorf("reading architecture: %w", err)
	}
	arch, err := lookupArch(name)
	if err != nil {
		return unknownArchError{err}
	}
	hp, err := readHParams(f.Meta)
	if err != nil {
		return err
	}
	if arch.ReadHParams != nil {
		if err := arch.ReadHParams(f.Meta, &hp); err != nil {
			return err
		}
	}
	te, ok := f.Tensor(tokEmbd)
	if !ok || len(te.Dims) != 2 || te.Dims[1] < 1 || te.Dims[1] > maxDim {
		return fmt.Errorf("missing or malformed %s", tokEmbd)
	}
	hp.Vocab = int(te.Dims[1])
	present := func(name string) bool { _, ok := f.Tensor(name); return ok }
	check := func(spec TensorSpec, name string) error {
		info, ok := f.Tensor(name)
		if !ok {
			if spec.Optional {
				return nil
			}
			return fmt.Errorf("tensor %s is missing (%s.block_count is %d)", name, hp.Arch, hp.Layers)
		}
		if err := checkShape(spec, info, hp); err != nil {
			return err
		}
		return checkType(spec, info)
	}
	for _, s := range arch.Globals {
		if err := check(s, s.Name); err != nil {
			return err
		}
	}
	for l := range hp.Layers {
		for _, s := range arch.Block {
			if err := check(s, blockName(l, s.Name)); err != nil {
				return err
			}
		}
		if arch.Check != nil && !present(blockName(l, "attn_qkv.weight")) {
			for _, n := range []string{"attn_q.weight", "attn_k.weight", "attn_v.weight"} {
				if !present(blockName(l, n)) {
					return fmt.Errorf("block %d has neither attn_qkv.weight nor %s", l, n)
				}
			}
		}
	}
	return nil
}

// checkType refuses types no matrix product or norm of ecotune or llama.cpp takes.
func checkType(spec TensorSpec, info gguf.TensorInfo) error {
	typ := ggml.Type(info.Type)
	if !typ.Valid() || typ == ggml.TypeI8 || typ == ggml.TypeI16 || typ == ggml.TypeI32 || typ == ggml.TypeI64 || typ == ggml.TypeF64 {
		return fmt.Errorf("tensor %s has type %s, which is not a weight type", info.Name, info.Type)
	}
	if len(spec.Dims) == 1 && typ != ggml.TypeF32 {
		return fmt.Errorf("tensor %s is %s; norm weights and biases must be f32", info.Name, typ)
	}
	return nil
}

// Tokenizer keys checkVocab reads.
const (
	keyTokens    = "tokenizer.ggml.tokens"
	keyScores    = "tokenizer.ggml.scores"
	keyTokenType = "tokenizer.ggml.token_type"
	keyMerges    = "tokenizer.ggml.merges"
)

// checkVocab checks the tokenizer arrays llama.cpp indexes by token id without bounds
// checks (scores and token types are read for every token), and that each special
// token id names a token. A model without tokenizer.ggml.tokens has no vocabulary to
// check (llama.cpp refuses it itself, with an error).
func checkVocab(f *gguf.File) error {
	if !f.Meta.Has(keyTokens) {
		return nil
	}
	tokens, err := f.Meta.Strings(keyTokens)
	if err != nil {
		return fmt.Errorf("%s: %w", keyTokens, err)
	}
	n := len(tokens)
	if n == 0 {
		return fmt.Errorf("%s is empty", keyTokens)
	}
	if te, ok := f.Tensor(tokEmbd); ok && len(te.Dims) == 2 && te.Dims[1] != int64(n) {
		return fmt.Errorf("%s has %d tokens but %s has %d rows", keyTokens, n, tokEmbd, te.Dims[1])
	}
	if f.Meta.Has(keyScores) {
		s, err := f.Meta.Float32s(keyScores)
		if err != nil {
			return fmt.Errorf("%s: %w", keyScores, err)
		}
		if len(s) != n {
			return fmt.Errorf("%s has %d entries for %d tokens", keyScores, len(s), n)
		}
	}
	if f.Meta.Has(keyTokenType) {
		tt, err := f.Meta.Int32s(keyTokenType)
		if err != nil {
			return fmt.Errorf("%s: %w", keyTokenType, err)
		}
		if len(tt) != n {
			return fmt.Errorf("%s has %d entries for %d tokens", keyTokenType, len(tt), n)
		}
	}
	if f.Meta.Has(keyMerges) {
		if _, err := f.Meta.Strings(keyMerges); err != nil {
			return fmt.Errorf("%s: %w", keyMerges, err)
		}
	}
	for _, key := range f.Meta.Keys() {
		if !strings.HasPrefix(key, "tokenizer.ggml.") || !strings.HasSuffix(key, "_token_id") {
			continue
		}
		id, err := f.Meta.Int(key)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		// -1, also stored as u32 0xFFFFFFFF, is llama.cpp's "no such token".
		if id == -1 || id == 0xFFFFFFFF {
			continue
		}
		if id < 0 || id >= int64(n) {
			return fmt.Errorf("%s is %d, outside the vocabulary of %d tokens", key, id, n)
		}
	}
	return nil
}
