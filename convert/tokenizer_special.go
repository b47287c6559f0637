package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ecotune/ecotune/gguf"
)

// tokenizerConfig is tokenizer_config.json, kept as decoded JSON.
type tokenizerConfig struct {
	path string
	m    map[string]any
}

func readTokenizerConfig(dir string) (*tokenizerConfig, error) {
	path := filepath.Join(dir, TokenizerConfig)
	tc := &tokenizerConfig{path: path, m: map[string]any{}}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return tc, nil
	}
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	if err := json.Unmarshal(raw, &tc.m); err != nil {
		return nil, fmt.Errorf("convert: %s: %v", path, err)
	}
	if tc.m == nil {
		tc.m = map[string]any{}
	}
	return tc, nil
}

func (tc *tokenizerConfig) class() string { s, _ := tc.m["tokenizer_class"].(string); return s }

// token returns the content of a "<typ>_token" entry (a string or an
// AddedToken object).
func (tc *tokenizerConfig) token(typ string) (string, bool) {
	switch v := tc.m[typ+"_token"].(type) {
	case string:
		return v, true
	case map[string]any:
		s, ok := v["content"].(string)
		return s, ok
	}
	return "", false
}

// specialTypes are the special tokens llama.cpp's converter looks up, with
// the GGUF key of each.
var specialTypes = []struct{ typ, key string }{
	{"bos", "tokenizer.ggml.bos_token_id"},
	{"eos", "tokenizer.ggml.eos_token_id"},
	{"unk", "tokenizer.ggml.unknown_token_id"},
	{"sep", "tokenizer.ggml.seperator_token_id"}, // sic: llama.cpp's spelling
	{"pad", "tokenizer.ggml.padding_token_id"},
	{"cls", "tokenizer.ggml.cls_token_id"},
	{"mask", "tokenizer.ggml.mask_token_id"},
}

// specialKeys writes special token ids, add_bos/add_eos and the chat
// template, from tokenizer.json's post-processor, tokenizer_config.json and
// config.json, in the order of precedence llama.cpp's SpecialVocab uses.
func specialKeys(dir string, tc *tokenizerConfig, v *vocabulary, m *gguf.Metadata) error {
	add := map[string]bool{}
	// A TemplateProcessing post-processor that starts with the BOS token (ends
	// with EOS) means the tokenizer adds it.
	if t, err := readTokenizerJSON(filepath.Join(dir, TokenizerJSON)); err == nil {
		if v.added == nil {
			v.added = t.AddedTokens
		}
		postProcessorAdds(t.PostProcessor, tc, add)
	}
	for _, typ := range []string{"bos", "eos"} {
		if b, ok := tc.m["add_"+typ+"_token"].(bool); ok {
			add[typ] = b
		}
	}
	ids := map[string]int{}
	for _, s := range specialTypes {
		content, ok := tc.token(s.typ)
		if !ok {
			continue
		}
		for _, a := range v.added {
			if a.Content == content && a.ID < len(v.tokens) {
				ids[s.typ] = a.ID
				break
			}
		}
		if _, ok := ids[s.typ]; !ok {
			// SentencePiece's own control tokens (<s>, </s>) are not added tokens.
			for id, tok := range v.tokens {
				if tok == content && v.types[id] != tokNormal {
					ids[s.typ] = id
					break
				}
			}
		}
	}
	if c, err := readConfig(dir); err == nil {
		for _, s := range specialTypes {
			if _, ok := ids[s.typ]; ok {
				continue
			}
			id, ok, err := c.optInt(s.typ + "_token_id")
			if err == nil && ok && id < len(v.tokens) {
				ids[s.typ] = id
			}
		}
	}
	for _, s := range specialTypes {
		if id, ok := ids[s.typ]; ok {
			m.Set(s.key, gguf.ValueOf(uint32(id)))
		}
	}
	for _, typ := range []string{"bos", "eos"} {
		if b, ok := add[typ]; ok {
			m.Set("tokenizer.ggml.add_"+typ+"_token", gguf.ValueOf(b))
		}
	}
	return chatTemplate(dir, tc, m)
}

func postProcessorAdds(raw json.RawMessage, tc *tokenizerConfig, add map[string]bool) {
	var pp struct {
		Type       string            `json:"type"`
		Processors []json.RawMessage `json:"processors"`
		Single     []struct {
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
		} `json:"single"`
	}
	if json.Unmarshal(raw, &pp) != nil {
		return
	}
	if pp.Type == "Sequence" {
		for _, p := range pp.Processors {
			postProcessorAdds(p, tc, add)
		}
		return
	}
	if pp.Type != "TemplateProcessing" || len(pp.Single) < 2 {
		return
	}
	bos, _ := tc.token("bos")
	eos, _ := tc.token("eos")
	if st := pp.Single[0].SpecialToken; st != nil {
		add["bos"] = st.ID == bos || bos == ""
	}
	if st := pp.Single[len(pp.Single)-1].SpecialToken; st != nil {
		add["eos"] = st.ID == eos
	}
}

// chatTemplate copies the chat template: tokenizer_config.json's
// chat_template (a string, or named templates), else chat_template.jinja,
// else chat_template.json.
func chatTemplate(dir string, tc *tokenizerConfig, m *gguf.Metadata) error {
	switch t := tc.m["chat_template"].(type) {
	case string:
		m.Set("tokenizer.chat_template", gguf.ValueOf(t))
		return nil
	case []any:
		var names []string
		for i, x := range t {
			e, _ := x.(map[string]any)
			name, ok1 := e["name"].(string)
			tmpl, ok2 := e["template"].(string)
			if !ok1 || !ok2 {
				return fmt.Errorf("convert: %s: chat_template[%d]: want {\"name\", \"template\"}", tc.path, i)
			}
			if name == "default" {
				m.Set("tokenizer.chat_template", gguf.ValueOf(tmpl))
				continue
			}
			m.Set("tokenizer.chat_template."+name, gguf.ValueOf(tmpl))
			names = append(names, name)
		}
		if names != nil {
			m.Set("tokenizer.chat_templates", gguf.ArrayOf(names))
		}
		return nil
	case nil:
	default:
		return fmt.Errorf("convert: %s: chat_template is %T, want a string", tc.path, t)
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
		m.Set("tokenizer.chat_template", gguf.ValueOf(string(raw)))
		return nil
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "chat_template.json")); err == nil {
		var ct struct {
			ChatTemplate string `json:"chat_template"`
		}
		if err := json.Unmarshal(raw, &ct); err != nil {
			return fmt.Errorf("convert: %s: %v", filepath.Join(dir, "chat_template.json"), err)
		}
		if ct.ChatTemplate != "" {
			m.Set("tokenizer.chat_template", gguf.ValueOf(ct.ChatTemplate))
		}
	}
	return nil
}

// addedTokensDecoder reads tokenizer_config.json's added_tokens_decoder
// (id → token) as added tokens.
func (tc *tokenizerConfig) addedTokensDecoder() ([]addedToken, error) {
	d, _ := tc.m["added_tokens_decoder"].(map[string]any)
	var out []addedToken
	for k, x := range d {
		id, err := strconv.Atoi(k)
		e, ok := x.(map[string]any)
		content, ok2 := e["content"].(string)
		if err != nil || id < 0 || !ok || !ok2 {
			return nil, fmt.Errorf("convert: %s: added_tokens_decoder[%q]: want an id and {\"content\": ...}", tc.path, k)
		}
		special, _ := e["special"].(bool)
		out = append(out, addedToken{ID: id, Content: content, Special: special})
	}
	return out, nil
}
