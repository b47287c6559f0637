package convert

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/ecotune/ecotune/gguf"
)

// ggufVocab is the tokenizer.* part of a GGUF model.
type ggufVocab struct {
	model, pre string
	tokens     []string
	types      []int32
	scores     []float32
	merges     []string
	ids        map[string]int // special token type (bos, eos, ...) → id
	add        map[string]bool
	template   string
}

func readGGUFVocab(m *gguf.Metadata) (*ggufVocab, error) {
	v := &ggufVocab{ids: map[string]int{}, add: map[string]bool{}}
	var err error
	if v.model, err = m.String("tokenizer.ggml.model"); err != nil {
		return nil, err
	}
	v.pre, _ = m.String("tokenizer.ggml.pre")
	if v.tokens, err = m.Strings("tokenizer.ggml.tokens"); err != nil {
		return nil, err
	}
	if v.types, err = m.Int32s("tokenizer.ggml.token_type"); err != nil || len(v.types) != len(v.tokens) {
		v.types = make([]int32, len(v.tokens))
		for i := range v.types {
			v.types[i] = tokNormal
		}
	}
	if m.Has("tokenizer.ggml.scores") {
		if v.scores, err = m.Float32s("tokenizer.ggml.scores"); err != nil {
			return nil, err
		}
	}
	if m.Has("tokenizer.ggml.merges") {
		if v.merges, err = m.Strings("tokenizer.ggml.merges"); err != nil {
			return nil, err
		}
	}
	for _, s := range specialTypes {
		if id, err := m.Int(s.key); err == nil && id >= 0 && int(id) < len(v.tokens) {
			v.ids[s.typ] = int(id)
		}
	}
	for _, typ := range []string{"bos", "eos"} {
		if b, err := m.Bool("tokenizer.ggml.add_" + typ + "_token"); err == nil {
			v.add[typ] = b
		}
	}
	v.template, _ = m.String("tokenizer.chat_template")
	return v, nil
}

// encodeSPM writes a SentencePiece ModelProto holding the vocabulary: every
// piece with its score and type, a BPE trainer spec with byte fallback (the
// model llama.cpp's "llama" tokenizer implements), and an identity normalizer
// that adds the leading ▁ and escapes spaces.
func encodeSPM(v *ggufVocab) []byte {
	var b []byte
	for i, tok := range v.tokens {
		var p []byte
		p = protoBytes(p, spmPieceText, []byte(tok))
		var score float32
		if i < len(v.scores) {
			score = v.scores[i]
		}
		p = protoFixed32(p, spmPieceScore, math.Float32bits(score))
		if v.types[i] != tokNormal {
			p = protoVarint(p, spmPieceType, uint64(v.types[i]))
		}
		b = protoBytes(b, spmPieces, p)
	}
	var trainer []byte
	trainer = protoVarint(trainer, 3, 2) // model_type: BPE
	trainer = protoVarint(trainer, 4, uint64(len(v.tokens)))
	trainer = protoVarint(trainer, 35, 1) // byte_fallback
	for typ, field := range map[string]int{"unk": 40, "bos": 41, "eos": 42, "pad": 43} {
		if id, ok := v.ids[typ]; ok {
			trainer = protoVarint(trainer, field, uint64(id))
		}
	}
	b = protoBytes(b, 2, trainer)
	var norm []byte
	norm = protoBytes(norm, 1, []byte("identity"))
	norm = protoVarint(norm, 3, 1) // add_dummy_prefix
	norm = protoVarint(norm, 4, 0) // remove_extra_whitespaces
	norm = protoVarint(norm, 5, 1) // escape_whitespaces
	return protoBytes(b, 3, norm)
}

func protoTag(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field<<3|wire))
}

func protoVarint(b []byte, field int, v uint64) []byte {
	return binary.AppendUvarint(protoTag(b, field, 0), v)
}

func protoFixed32(b []byte, field int, v uint32) []byte {
	return binary.LittleEndian.AppendUint32(protoTag(b, field, 5), v)
}

func protoBytes(b []byte, field int, data []byte) []byte {
	b = binary.AppendUvarint(protoTag(b, field, 2), uint64(len(data)))
	return append(b, data...)
}

// preTokenizerJSON is tokenizer.json's pre_tokenizer (and normalizer) for
// a llama.cpp pre-tokenizer name: the inverse of recognisePre.
func preTokenizerJSON(pre string) (preTok, normalizer any, err error) {
	byteLevel := func(useRegex bool) map[string]any {
		return map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": useRegex}
	}
	split := func(re string) map[string]any {
		return map[string]any{"type": "Split", "pattern": map[string]any{"Regex": re}, "behavior": "Isolated", "invert": false}
	}
	seq := func(steps ...any) map[string]any { return map[string]any{"type": "Sequence", "pretokenizers": steps} }
	switch pre {
	case PreLlama3:
		return seq(split(llama3Regex), byteLevel(false)), nil, nil
	case PreQwen2:
		return seq(split(qwen2Regex), byteLevel(false)), map[string]any{"type": "NFC"}, nil
	case PreGPT2, PrePhi2:
		return byteLevel(true), nil, nil
	case PreSmolLM:
		return seq(map[string]any{"type": "Digits", "individual_digits": true}, byteLevel(true)), nil, nil
	}
	return nil, nil, fmt.Errorf("no tokenizer.json pre-tokenizer is known for tokenizer.ggml.pre %q (llama-bpe, qwen2, gpt-2, phi-2, smollm are)", pre)
}

// tokenizerJSONOf builds a tokenizers-library tokenizer.json for a GGUF BPE
// vocabulary: normal tokens in model.vocab, control and user-defined ones as
// added tokens, merges as "a b" strings.
func tokenizerJSONOf(v *ggufVocab) (map[string]any, error) {
	preTok, normalizer, err := preTokenizerJSON(v.pre)
	if err != nil {
		return nil, err
	}
	vocab := map[string]int{}
	var added []map[string]any
	for id, tok := range v.tokens {
		switch v.types[id] {
		case tokControl, tokUserDefined:
			special := v.types[id] == tokControl
			added = append(added, map[string]any{"id": id, "content": tok, "single_word": false, "lstrip": false,
				"rstrip": false, "normalized": !special, "special": special})
		case tokUnused:
		default:
			vocab[tok] = id
		}
	}
	post := any(map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true})
	if id, ok := v.ids["bos"]; ok && v.add["bos"] {
		bos := v.tokens[id]
		post = map[string]any{"type": "Sequence", "processors": []any{post, map[string]any{
			"type":           "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": bos, "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair":           []any{map[string]any{"SpecialToken": map[string]any{"id": bos, "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": bos, "type_id": 1}}, map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
			"special_tokens": map[string]any{bos: map[string]any{"id": bos, "ids": []int{id}, "tokens": []string{bos}}},
		}}}
	}
	merges := v.merges
	if merges == nil {
		merges = []string{}
	}
	return map[string]any{
		"version":        "1.0",
		"truncation":     nil,
		"padding":        nil,
		"added_tokens":   added,
		"normalizer":     normalizer,
		"pre_tokenizer":  preTok,
		"post_processor": post,
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": v.pre == PreLlama3,
			"vocab": vocab, "merges": merges},
	}, nil
}

// tokenizerConfigOf is tokenizer_config.json: the special tokens by content,
// whether BOS/EOS are added, the chat template, and the tokenizer class.
func tokenizerConfigOf(v *ggufVocab, arch string) map[string]any {
	c := map[string]any{"model_max_length": 1 << 30, "clean_up_tokenization_spaces": false}
	for _, s := range specialTypes {
		if id, ok := v.ids[s.typ]; ok {
			c[s.typ+"_token"] = v.tokens[id]
		}
	}
	for typ, b := range v.add {
		c["add_"+typ+"_token"] = b
	}
	if v.template != "" {
		c["chat_template"] = v.template
	}
	switch {
	case v.model == "llama" && arch == "gemma2":
		c["tokenizer_class"] = "GemmaTokenizer"
	case v.model == "llama":
		c["tokenizer_class"] = "LlamaTokenizer"
		c["legacy"] = true
	default:
		c["tokenizer_class"] = "PreTrainedTokenizerFast"
	}
	return c
}
