package convert

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// tokenizerJSON is the part of a tokenizers-library file the converter reads.
type tokenizerJSON struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         struct {
		Type   string          `json:"type"`
		Vocab  map[string]int  `json:"vocab"`
		Merges json.RawMessage `json:"merges"`
	} `json:"model"`
}

func readTokenizerJSON(path string) (*tokenizerJSON, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t tokenizerJSON
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("convert: %s: %v", path, err)
	}
	return &t, nil
}

// readBPE reads a byte-level BPE tokenizer.json: vocabulary, merges, added
// tokens with their types, and the pre-tokenizer.
func readBPE(path string, o TokenizerOptions) (*vocabulary, error) {
	t, err := readTokenizerJSON(path)
	if err != nil {
		return nil, err
	}
	if t.Model.Type != "BPE" {
		return nil, fmt.Errorf("convert: %s: model.type is %q; only BPE tokenizers are read from tokenizer.json (SentencePiece ones need tokenizer.model)", path, t.Model.Type)
	}
	merges, err := readMerges(t.Model.Merges)
	if err != nil {
		return nil, fmt.Errorf("convert: %s: model.merges: %w", path, err)
	}
	n := o.VocabSize
	maxID := -1
	for _, id := range t.Model.Vocab {
		maxID = max(maxID, id)
	}
	for _, a := range t.AddedTokens {
		maxID = max(maxID, a.ID)
	}
	if n == 0 {
		if maxID >= MaxVocab {
			return nil, fmt.Errorf("convert: %s: token id %d is not below %d", path, maxID, MaxVocab)
		}
		n = maxID + 1
	}
	if maxID >= n {
		return nil, fmt.Errorf("convert: %s: token id %d is not below vocab_size %d of config.json", path, maxID, n)
	}
	v := &vocabulary{model: "gpt2", tokens: make([]string, n), types: make([]int32, n), merges: merges, added: t.AddedTokens}
	set := make([]bool, n)
	for tok, id := range t.Model.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("convert: %s: token %q has id %d", path, tok, id)
		}
		v.tokens[id], v.types[id], set[id] = tok, tokNormal, true
	}
	for _, a := range t.AddedTokens {
		if a.ID < 0 {
			return nil, fmt.Errorf("convert: %s: added token %q has id %d", path, a.Content, a.ID)
		}
		tok, typ := a.Content, tokControl
		if !a.Special && !looksSpecial(tok) {
			// User-defined tokens are matched as plain text by llama.cpp, which
			// expects spaces, not SentencePiece's ▁.
			tok, typ = strings.ReplaceAll(tok, "▁", " "), tokUserDefined
		}
		v.tokens[a.ID], v.types[a.ID], set[a.ID] = tok, typ, true
	}
	for i := range n {
		if !set[i] {
			v.tokens[i], v.types[i] = fmt.Sprintf("[PAD%d]", i), tokUnused
		}
	}
	if o.Pre != "" {
		v.pre, v.preHow = o.Pre, "given"
	} else if v.pre, v.preHow, err = recognisePre(t.PreTokenizer); err != nil {
		return nil, fmt.Errorf("convert: %s: %w; name llama.cpp's pre-tokenizer with --pre (llama-bpe, qwen2, gpt-2, smollm, ...)", path, err)
	}
	return v, nil
}

// readMerges accepts both spellings of BPE merges: "a b" strings, and
// ["a", "b"] pairs, whose parts may contain spaces; GGUF separates the parts
// with one space, so a space inside a part becomes U+0120 as llama.cpp's
// converter writes it (byte-level BPE never has a literal space in a token).
func readMerges(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, fmt.Errorf("missing")
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		for i, s := range strs {
			if strings.Count(s, " ") != 1 {
				return nil, fmt.Errorf("merge %d %q is not two parts separated by one space", i, s)
			}
		}
		return strs, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("neither \"a b\" strings nor [\"a\", \"b\"] pairs")
	}
	out := make([]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("merge %d has %d parts, want 2", i, len(p))
		}
		out[i] = strings.ReplaceAll(p[0], " ", "Ġ") + " " + strings.ReplaceAll(p[1], " ", "Ġ")
	}
	return out, nil
}
