// Package config reads ecotune's TOML run configurations: the sections the original
// Python pipeline used ([model], [lora], [training]) plus [data] and [output], strictly
// (an unknown key is an error naming the file, line and the closest valid key), with
// ECOTUNE_* environment overrides for any key.
//
// A configuration is a set of dotted keys ("lora.r", "training.learning_rate") with
// values; only the keys a file or the environment sets are present, so a caller can
// layer defaults ← file ← environment ← command-line flags:
//
//	f, err := config.Load("configs/qlora.toml")
//	if err != nil {
//		return err // configs/qlora.toml:7: unknown key lora.rank (did you mean lora.r?)
//	}
//	if err := f.ApplyEnv(os.Environ()); err != nil {
//		return err
//	}
//	for _, kv := range f.Values() {
//		fmt.Println(kv.Key, kv.Value)
//	}
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Kind is a key's value type.
type Kind int

// The value types keys take.
const (
	String Kind = iota
	Int
	Float
	Bool
	StringList
	Count // an integer of at least 1: a rank, a batch size, a step count
)

func (k Kind) String() string {
	return [...]string{"a string", "an integer", "a number", "true or false", "a list of strings", "an integer of at least 1"}[k]
}

// Key describes one configuration key.
type Key struct {
	Name string // dotted: section.key
	Kind Kind
	Doc  string
}

// Keys lists every valid key, in the order configuration files present them.
func Keys() []Key {
	return []Key{
		{"model.name", String, "a label for the base model (for example its Hugging Face name)"},
		{"model.path", String, "base model GGUF file"},
		{"model.dtype", String, "weight type to train on: the file's own (empty), or f16, bf16, q8_0, q4_0, q4_k, iq4_nl, nf4 (QLoRA: the base is quantized first)"},
		{"model.compute_dtype", String, "type of the backward pass's products through the frozen weights: a quantized base dequantized to it, an F32 base's weights rounded to it: f32, f16 or bf16 (empty: on the CPU, bf16 where it multiplies BF16 natively, else f16 on x86 with F16C, else f32)"},

		{"data.train", String, "training data: a prepared .jsonl from `ecotune prepare`, or plain text"},
		{"data.val", String, "validation data; empty: hold out data.val_split of data.train"},
		{"data.val_split", Float, "fraction of data.train held out when data.val is empty"},
		{"data.seq_len", Int, "longest sequence in tokens"},
		{"data.packing", Bool, "lay several examples end to end in each sequence, each attending only to itself"},
		{"data.train_on_inputs", Bool, "the loss covers prompts too, not only answers"},

		{"lora.r", Count, "LoRA rank"},
		{"lora.lora_alpha", Float, "LoRA alpha: updates are scaled by alpha/r (alpha/sqrt(r) with use_rslora)"},
		{"lora.lora_dropout", Float, "dropout on the adapters' input"},
		{"lora.target_modules", StringList, "modules to adapt: Hugging Face (q_proj) or GGUF (attn_q) names, or [\"all\"]"},
		{"lora.use_rslora", Bool, "rank-stabilised scaling"},
		{"lora.task_name", String, "task name written into the adapter (adapter.lora.task_name)"},

		{"training.method", String, "lora (adapters on a frozen base) or full (every weight of an F32/F16/BF16 model)"},
		{"training.learning_rate", Float, "peak learning rate"},
		{"training.min_learning_rate", Float, "final learning rate of the decay"},
		{"training.scheduler", String, "cosine, linear or constant"},
		{"training.warmup_steps", Int, "linear warmup steps"},
		{"training.max_steps", Int, "optimizer steps"},
		{"training.epochs", Int, "passes over the training data (replaces max_steps)"},
		{"training.batch_size", Count, "sequences per micro-batch"},
		{"training.gradient_accumulation", Count, "micro-batches per optimizer step"},
		{"training.max_grad_norm", Float, "clip the global gradient norm; 0 disables"},
		{"training.weight_decay", Float, "AdamW decoupled weight decay"},
		{"training.adam_beta1", Float, "AdamW decay of the first moment"},
		{"training.adam_beta2", Float, "AdamW decay of the second moment"},
		{"training.adam_epsilon", Float, "AdamW epsilon"},
		{"training.eval_steps", Int, "evaluate every this many steps; -1 never"},
		{"training.eval_batches", Int, "batches per evaluation; 0 the whole validation set"},
		{"training.save_steps", Int, "checkpoint every this many steps; 0 only at the end"},
		{"training.save_total_limit", Int, "checkpoints kept"},
		{"training.early_stopping_patience", Int, "evaluations without improvement before stopping; 0 never"},
		{"training.early_stopping_min_delta", Float, "smallest drop of the validation loss that counts"},
		{"training.seed", Int, "seed of initialisation, shuffling and dropout"},
		{"training.gradient_checkpointing", Bool, "recompute activations in the backward pass: less memory, more compute"},
		{"training.checkpoint_keep", String, "with gradient checkpointing, products stored instead of recomputed: none, ffn or all"},
		{"training.threads", Int, "CPU threads; 0 all"},
		{"training.gpu", Bool, "train on GPU 0 (CUDA builds)"},

		{"output.dir", String, "run directory: adapter, checkpoints, metrics"},
	}
}

// KV is one key set by a file or the environment, with its value as text (lists
// comma-separated), ready for a command-line flag parser.
type KV struct {
	Key    string
	Value  string
	Source string // "FILE:LINE" or the environment variable's name
}

// File is a parsed configuration: the keys it sets.
type File struct {
	Path string
	set  map[string]KV
}

// Load reads and validates a TOML configuration file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, b)
}

// Parse validates TOML text; name is used in errors.
func Parse(name string, text []byte) (*File, error) {
	var doc map[string]any
	dec := toml.NewDecoder(bytes.NewReader(text))
	if err := dec.Decode(&doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, _ := de.Position()
			return nil, fmt.Errorf("%s:%d: %s", name, row, de.Error())
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f := &File{Path: name, set: map[string]KV{}}
	lines := keyLines(text)
	var errs []string
	for section, v := range doc {
		table, ok := v.(map[string]any)
		if !ok {
			errs = append(errs, fmt.Sprintf("%s:%d: %s must be a [section] (known: %s)", name, lines[section], section, strings.Join(sections(), ", ")))
			continue
		}
		for k, val := range table {
			dotted := section + "." + k
			line := lines[dotted]
			key, ok := lookup(dotted)
			if !ok {
				errs = append(errs, fmt.Sprintf("%s:%d: unknown key %s%s", name, line, dotted, suggestion(dotted)))
				continue
			}
			text, err := format(key, val)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s:%d: %s: %v", name, line, dotted, err))
				continue
			}
			f.set[dotted] = KV{Key: dotted, Value: text, Source: fmt.Sprintf("%s:%d", name, line)}
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	return f, nil
}

// Values returns the keys set, in the order of Keys().
func (f *File) Values() []KV {
	var out []KV
	for _, k := range Keys() {
		if kv, ok := f.set[k.Name]; ok {
			out = append(out, kv)
		}
	}
	return out
}

// Get returns the value of key and whether it is set.
func (f *File) Get(key string) (string, bool) {
	kv, ok := f.set[key]
	return kv.Value, ok
}

// Set sets key from text, checking the key and its type.
func (f *File) Set(key, value, source string) error {
	k, ok := lookup(key)
	if !ok {
		return fmt.Errorf("%s: unknown key %s%s", source, key, suggestion(key))
	}
	if err := checkText(k, value); err != nil {
		return fmt.Errorf("%s: %s: %w", source, key, err)
	}
	if f.set == nil {
		f.set = map[string]KV{}
	}
	f.set[key] = KV{Key: key, Value: value, Source: source}
	return nil
}

// EnvPrefix starts the environment variables that override keys: ECOTUNE_LORA_R sets
// lora.r, ECOTUNE_TRAINING_LEARNING_RATE sets training.learning_rate.
const EnvPrefix = "ECOTUNE_"

// ApplyEnv sets keys from environ ("NAME=value" entries). Variables whose name starts
// with EnvPrefix and a section name are configuration; an unknown key in a known
// section is an error, and other ECOTUNE_ variables (build settings) are ignored.
func (f *File) ApplyEnv(environ []string) error {
	known := map[string]bool{}
	for _, s := range sections() {
		known[s] = true
	}
	for _, e := range environ {
		name, value, ok := strings.Cut(e, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		section, key, ok := strings.Cut(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "_")
		if !ok || !known[section] {
			continue
		}
		if err := f.Set(section+"."+key, value, name); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return nil
}

func lookup(name string) (Key, bool) {
	for _, k := range Keys() {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}

func sections() []string {
	var out []string
	for _, k := range Keys() {
		s, _, _ := strings.Cut(k.Name, ".")
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// format turns a decoded TOML value into flag text, checking its type.
func format(k Key, v any) (string, error) {
	bad := fmt.Errorf("want %s, got %v (%T)", k.Kind, v, v)
	switch k.Kind {
	case String:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case Int, Count:
		if n, ok := v.(int64); ok && (k.Kind == Int || n >= 1) {
			return strconv.FormatInt(n, 10), nil
		}
	case Float:
		switch n := v.(type) {
		case float64:
			return strconv.FormatFloat(n, 'g', -1, 64), nil
		case int64:
			return strconv.FormatInt(n, 10), nil
		}
	case Bool:
		if b, ok := v.(bool); ok {
			return strconv.FormatBool(b), nil
		}
	case StringList:
		list, ok := v.([]any)
		if !ok {
			return "", bad
		}
		parts := make([]string, len(list))
		for i, e := range list {
			s, ok := e.(string)
			if !ok || s == "" || strings.Contains(s, ",") {
				return "", fmt.Errorf("element %d: want a non-empty string without commas, got %v", i, e)
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return "", bad
}

// checkText validates a value given as text (environment, flags).
func checkText(k Key, s string) error {
	var err error
	switch k.Kind {
	case Int:
		_, err = strconv.ParseInt(s, 10, 64)
	case Count:
		var n int64
		if n, err = strconv.ParseInt(s, 10, 64); err == nil && n < 1 {
			err = fmt.Errorf("%d < 1", n)
		}
	case Float:
		_, err = strconv.ParseFloat(s, 64)
	case Bool:
		_, err = strconv.ParseBool(s)
	}
	if err != nil {
		return fmt.Errorf("want %s, got %q", k.Kind, s)
	}
	return nil
}

// keyLines maps each dotted key (and section) of a TOML text to its line, for errors.
// It understands [section] headers and key = value lines, which is all a configuration
// holds; keys it cannot place get line 0.
func keyLines(text []byte) map[string]int {
	out := map[string]int{}
	section := ""
	for i, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "["):
			section = strings.TrimSpace(strings.Trim(line, "[]"))
			out[section] = i + 1
		case line != "" && !strings.HasPrefix(line, "#"):
			if k, _, ok := strings.Cut(line, "="); ok {
				k = strings.Trim(strings.TrimSpace(k), `"'`)
				if section == "" {
					out[k] = i + 1
				} else if _, seen := out[section+"."+k]; !seen {
					out[section+"."+k] = i + 1
				}
			}
		}
	}
	return out
}
