package convert

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ecotune/ecotune/gguf"
)

// Tokenizer files of a checkpoint.
const (
	TokenizerJSON   = "tokenizer.json"
	TokenizerModel  = "tokenizer.model"
	TokenizerConfig = "tokenizer_config.json"
)

// GGUF token types (llama.cpp's llama_token_type; SentencePiece numbers its
// piece types the same way).
const (
	tokNormal      int32 = 1
	tokUnknown     int32 = 2
	tokControl     int32 = 3
	tokUserDefined int32 = 4
	tokUnused      int32 = 5
	tokByte        int32 = 6
)

// vocabulary is a tokenizer ready for GGUF's tokenizer.* keys.
type vocabulary struct {
	model  string // tokenizer.ggml.model: "gpt2" (BPE) or "llama" (SentencePiece)
	pre    string
	preHow string
	tokens []string
	types  []int32
	scores []float32 // SentencePiece only
	merges []string  // BPE only
	// added are tokenizer.json's added tokens, where special tokens are looked up.
	added []addedToken
}

// addedToken is one entry of tokenizer.json's added_tokens.
type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	Special    bool   `json:"special"`
	Normalized bool   `json:"normalized"`
}

// TokenizerOptions says how to read a checkpoint's tokenizer.
type TokenizerOptions struct {
	// Arch is the GGUF architecture (llama, qwen2, phi2, phi3, gemma2).
	Arch string
	// VocabSize is config.json's vocab_size; 0 takes the tokenizer's own size.
	VocabSize int
	// Pre overrides the recognised tokenizer.ggml.pre of a BPE tokenizer.
	Pre string
}

// TokenizerInfo summarises the tokenizer that was read.
type TokenizerInfo struct {
	Model, Pre, PreHow string // tokenizer.ggml.model and .pre, and how pre was chosen
	Tokens, Merges     int
	Source             string // the file read
}

// TokenizerMetadata reads the tokenizer of checkpoint folder dir
// (tokenizer.model for SentencePiece, else tokenizer.json) with its special
// tokens and chat template, and returns the tokenizer.* keys llama.cpp reads.
func TokenizerMetadata(dir string, o TokenizerOptions) (*gguf.Metadata, TokenizerInfo, error) {
	a, err := archByName(o.Arch)
	if err != nil {
		return nil, TokenizerInfo{}, fmt.Errorf("convert: %w", err)
	}
	var v *vocabulary
	var source string
	spm := filepath.Join(dir, TokenizerModel)
	bpe := filepath.Join(dir, TokenizerJSON)
	_, spmErr := os.Stat(spm)
	tc, err := readTokenizerConfig(dir)
	if err != nil {
		return nil, TokenizerInfo{}, err
	}
	gpt2Class := tc.class() == "GPT2Tokenizer"
	switch {
	case spmErr == nil && !a.bpeOnly && !gpt2Class:
		source = spm
		v, err = readSPM(dir, o.VocabSize)
	default:
		source = bpe
		v, err = readBPE(bpe, o)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, TokenizerInfo{}, fmt.Errorf("convert: tokenizer missing: %s has neither %s nor %s", dir, TokenizerModel, TokenizerJSON)
		}
	}
	if err != nil {
		return nil, TokenizerInfo{}, err
	}
	m := &gguf.Metadata{}
	m.Set("tokenizer.ggml.model", gguf.ValueOf(v.model))
	m.Set("tokenizer.ggml.pre", gguf.ValueOf(v.pre))
	m.Set("tokenizer.ggml.tokens", gguf.ArrayOf(v.tokens))
	if v.scores != nil {
		m.Set("tokenizer.ggml.scores", gguf.ArrayOf(v.scores))
	}
	m.Set("tokenizer.ggml.token_type", gguf.ArrayOf(v.types))
	if v.merges != nil {
		m.Set("tokenizer.ggml.merges", gguf.ArrayOf(v.merges))
	}
	if err := specialKeys(dir, tc, v, m); err != nil {
		return nil, TokenizerInfo{}, err
	}
	switch o.Arch {
	case "phi2":
		m.Set("tokenizer.ggml.add_bos_token", gguf.ValueOf(false))
	case "gemma2":
		m.Set("tokenizer.ggml.add_space_prefix", gguf.ValueOf(false))
	case "llama":
		if b, ok := tc.m["add_prefix_space"].(bool); ok {
			m.Set("tokenizer.ggml.add_space_prefix", gguf.ValueOf(b))
		}
	}
	return m, TokenizerInfo{Model: v.model, Pre: v.pre, PreHow: v.preHow, Tokens: len(v.tokens), Merges: len(v.merges), Source: source}, nil
}

// looksSpecial is llama.cpp's does_token_look_special: added tokens that some
// checkpoints forget to mark special but are control tokens.
func looksSpecial(s string) bool {
	switch s {
	case "<pad>", "<mask>", "<2mass>", "[@BOS@]":
		return true
	}
	return strings.HasPrefix(s, "<|") && strings.HasSuffix(s, "|>") ||
		strings.HasPrefix(s, "<｜") && strings.HasSuffix(s, "｜>") ||
		strings.HasPrefix(s, "<unused") && strings.HasSuffix(s, ">")
}

// padTo extends a vocabulary to n tokens with llama.cpp's [PADi] placeholders.
func (v *vocabulary) padTo(n int) {
	for i := len(v.tokens); i < n; i++ {
		v.tokens = append(v.tokens, fmt.Sprintf("[PAD%d]", i))
		v.types = append(v.types, tokUnused)
		if v.scores != nil {
			v.scores = append(v.scores, -1000)
		}
	}
}
