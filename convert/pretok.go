package convert

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// How tokenizer.ggml.pre is chosen. llama.cpp's converter encodes a check
// text with the Hugging Face tokenizer and looks the hash of the ids up in a
// table; that needs the tokenizers library. Here the pre-tokenizer is
// recognised from tokenizer.json itself (its Split regex, or a ByteLevel
// pre-tokenizer with GPT-2's built-in regex): the regex is what the pre type
// stands for in llama.cpp (src/llama-vocab.cpp), so recognising it is exact
// where it applies and says plainly where it does not. PreHash then lets a
// caller with a tokenizer (cmd/ecotune, through libllama) confirm the choice
// against the converter's table, and the tests do so for real tokenizers.

// The Split regexes of the tokenizers this converter recognises, as
// tokenizer.json spells them.
const (
	llama3Regex = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Regex  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// Pre-tokenizer names written to tokenizer.ggml.pre.
const (
	PreLlama3 = "llama-bpe"
	PreQwen2  = "qwen2"
	PreGPT2   = "gpt-2"
	PrePhi2   = "phi-2"
	PreSmolLM = "smollm"
)

// preStep is one pre-tokenizer of tokenizer.json's (possibly nested) sequence.
type preStep struct {
	Type           string          `json:"type"`
	Pattern        json.RawMessage `json:"pattern"`
	UseRegex       *bool           `json:"use_regex"`
	IndividualDigs bool            `json:"individual_digits"`
	Pretokenizers  []preStep       `json:"pretokenizers"`
}

// flatten lists the steps of a Sequence in order.
func (p preStep) flatten() []preStep {
	if p.Type == "Sequence" {
		var out []preStep
		for _, s := range p.Pretokenizers {
			out = append(out, s.flatten()...)
		}
		return out
	}
	return []preStep{p}
}

// recognisePre returns tokenizer.ggml.pre for a tokenizer.json pre_tokenizer,
// and a short description of what was recognised.
func recognisePre(raw json.RawMessage) (string, string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", "", fmt.Errorf("no pre_tokenizer")
	}
	var root preStep
	if err := json.Unmarshal(raw, &root); err != nil {
		return "", "", fmt.Errorf("pre_tokenizer: %v", err)
	}
	steps := root.flatten()
	var kinds []string
	for _, s := range steps {
		kinds = append(kinds, s.Type)
	}
	shape := strings.Join(kinds, "+")
	useRegex := func(s preStep) bool { return s.UseRegex == nil || *s.UseRegex }
	switch {
	case shape == "Split+ByteLevel" && !useRegex(steps[1]):
		var pat struct{ Regex string }
		if err := json.Unmarshal(steps[0].Pattern, &pat); err != nil {
			return "", "", fmt.Errorf("pre_tokenizer: Split pattern: %v", err)
		}
		switch pat.Regex {
		case llama3Regex:
			return PreLlama3, "Split regex of Llama 3 (digits in groups of up to 3)", nil
		case qwen2Regex:
			return PreQwen2, "Split regex of Qwen2 (single digits)", nil
		}
		return "", "", fmt.Errorf("pre_tokenizer: Split regex %q is not one this converter recognises", pat.Regex)
	case shape == "ByteLevel" && useRegex(steps[0]):
		return PreGPT2, "ByteLevel with GPT-2's regex", nil
	case shape == "Digits+ByteLevel" && steps[0].IndividualDigs && useRegex(steps[1]):
		return PreSmolLM, "single digits, then ByteLevel with GPT-2's regex", nil
	}
	return "", "", fmt.Errorf("pre_tokenizer %s is not one this converter recognises", shape)
}

// CheckText is the text llama.cpp's converter tokenizes to identify a BPE
// pre-tokenizer (chktxt in conversion/base.py).
const CheckText = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫\ufe0f (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"

// knownPreHashes maps the converter's hashes of CheckText's ids to
// pre-tokenizer names, for the names this converter writes.
var knownPreHashes = map[string]string{
	"0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": PreLlama3, // Meta-Llama-3-8B
	"e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": PreQwen2,  // Qwen1.5-7B
	"d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": PreQwen2,  // Qwen3
	"3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": PreGPT2,   // gpt2
	"fcace8b9cac38ce847670c970cd5892031a753a1ef381abd1d9af00f713da085": PrePhi2,   // phi-2
	"855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": PreSmolLM, // SmolLM-135M
}

// Tokenizer turns text into token ids, adding the special tokens the model
// adds (BOS where it has one), as transformers' encode does by default.
type Tokenizer interface {
	Tokenize(text string) ([]int32, error)
}

// PreHash tokenizes CheckText with tok and returns the hash llama.cpp's
// converter computes: sha256 of Python's str() of the id list.
func PreHash(tok Tokenizer) (string, error) {
	ids, err := tok.Tokenize(CheckText)
	if err != nil {
		return "", fmt.Errorf("convert: tokenizing the check text: %w", err)
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(int(id)))
	}
	b.WriteByte(']')
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:]), nil
}

// KnownPre returns the pre-tokenizer name llama.cpp's converter gives a
// PreHash value, for the tokenizers this package recognises.
func KnownPre(hash string) (string, bool) {
	name, ok := knownPreHashes[hash]
	return name, ok
}
