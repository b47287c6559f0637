package convert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// ConfigFile is the name of a checkpoint's hyper-parameter file.
const ConfigFile = "config.json"

// config is a checkpoint's config.json, kept as decoded JSON so that each
// architecture reads the keys it knows under the names transformers uses
// (several spellings exist for most of them). Numbers stay json.Number so that
// an integer field holding 2.5 is an error rather than a silent truncation.
type config struct {
	path string
	m    map[string]any
}

// readConfig loads dir/config.json. A nested text_config (multimodal
// wrappers) is lifted to the top level, as llama.cpp's converter does.
func readConfig(dir string) (*config, error) {
	path := filepath.Join(dir, ConfigFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("convert: %w (a Hugging Face checkpoint folder has config.json beside its *.safetensors)", err)
	}
	c, err := parseConfig(path, raw)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func parseConfig(path string, raw []byte) (*config, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("convert: %s: %v", path, err)
	}
	if m == nil {
		return nil, fmt.Errorf("convert: %s: not a JSON object", path)
	}
	if tc, ok := m["text_config"].(map[string]any); ok {
		for k, v := range tc {
			m[k] = v
		}
	}
	return &config{path: path, m: m}, nil
}

// lookup returns the first of keys present with a non-null value.
func (c *config) lookup(keys ...string) (string, any, bool) {
	for _, k := range keys {
		if v, ok := c.m[k]; ok && v != nil {
			return k, v, true
		}
	}
	return "", nil, false
}

// optInt reads the first present key of keys as a non-negative integer.
func (c *config) optInt(keys ...string) (int, bool, error) {
	k, v, ok := c.lookup(keys...)
	if !ok {
		return 0, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, false, fmt.Errorf("convert: %s: %s is %v, want an integer", c.path, k, v)
	}
	i, err := n.Int64()
	if err != nil || i < 0 || i > math.MaxInt32 {
		return 0, false, fmt.Errorf("convert: %s: %s is %s, want an integer from 0 to 2³¹-1", c.path, k, n)
	}
	return int(i), true, nil
}

// int reads a required integer; the error names the first spelling.
func (c *config) int(keys ...string) (int, error) {
	v, ok, err := c.optInt(keys...)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("convert: %s: %s is missing", c.path, keys[0])
	}
	return v, nil
}

// positive reads a required integer that must be at least 1.
func (c *config) positive(keys ...string) (int, error) {
	v, err := c.int(keys...)
	if err == nil && v == 0 {
		err = fmt.Errorf("convert: %s: %s is 0, want at least 1", c.path, keys[0])
	}
	return v, err
}

// optFloat reads the first present key of keys as a finite number.
func (c *config) optFloat(keys ...string) (float64, bool, error) {
	k, v, ok := c.lookup(keys...)
	if !ok {
		return 0, false, nil
	}
	return numberOf(c.path, k, v)
}

func numberOf(path, k string, v any) (float64, bool, error) {
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, false, fmt.Errorf("convert: %s: %s is %v, want a number", path, k, v)
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false, fmt.Errorf("convert: %s: %s is %s, want a finite number", path, k, n)
	}
	return f, true, nil
}

// float reads a required number.
func (c *config) float(keys ...string) (float64, error) {
	v, ok, err := c.optFloat(keys...)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("convert: %s: %s is missing", c.path, keys[0])
	}
	return v, nil
}

// bool reads a boolean, def when absent.
func (c *config) bool(key string, def bool) (bool, error) {
	v, ok := c.m[key]
	if !ok || v == nil {
		return def, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, fmt.Errorf("convert: %s: %s is %v, want true or false", c.path, key, v)
	}
	return b, nil
}

// architecture returns architectures[0].
func (c *config) architecture() (string, error) {
	v, ok := c.m["architectures"].([]any)
	if !ok || len(v) == 0 {
		return "", fmt.Errorf("convert: %s: architectures is missing (want e.g. [\"LlamaForCausalLM\"])", c.path)
	}
	s, ok := v[0].(string)
	if !ok {
		return "", fmt.Errorf("convert: %s: architectures[0] is %v, want a class name", c.path, v[0])
	}
	return s, nil
}

// rope returns the rope parameters: rope_parameters (transformers 5) or
// rope_scaling (older), with rope_theta and the other top-level rope keys
// mirrored in, so both spellings read the same. The "type" key of older files
// is read as "rope_type".
func (c *config) rope() map[string]any {
	r := map[string]any{}
	src, _ := c.m["rope_parameters"].(map[string]any)
	if src == nil {
		src, _ = c.m["rope_scaling"].(map[string]any)
	}
	if full, ok := src["full_attention"].(map[string]any); ok {
		src = full
	}
	for k, v := range src {
		r[k] = v
	}
	if _, ok := r["rope_type"]; !ok {
		if t, ok := r["type"]; ok {
			r["rope_type"] = t
		}
	}
	for _, k := range []string{"rope_theta", "partial_rotary_factor", "original_max_position_embeddings"} {
		if _, ok := r[k]; !ok {
			if v, ok := c.m[k]; ok && v != nil {
				r[k] = v
			}
		}
	}
	return r
}
