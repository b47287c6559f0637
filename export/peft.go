package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/safetensors"
)

// The files of a PEFT adapter directory (PeftModel.save_pretrained).
const (
	PEFTConfigFile  = "adapter_config.json"
	PEFTWeightsFile = "adapter_model.safetensors"
)

// PEFTConfig is the part of PEFT's LoraConfig (adapter_config.json) that
// ecotune writes and reads. JSON fields are in alphabetical order, as PEFT
// writes them.
type PEFTConfig struct {
	AlphaPattern        map[string]float64 `json:"alpha_pattern"`
	BaseModelNameOrPath string             `json:"base_model_name_or_path"`
	Bias                string             `json:"bias"`
	FanInFanOut         bool               `json:"fan_in_fan_out"`
	InferenceMode       bool               `json:"inference_mode"`
	InitLoraWeights     bool               `json:"init_lora_weights"`
	LoraAlpha           float64            `json:"lora_alpha"`
	LoraDropout         float64            `json:"lora_dropout"`
	ModulesToSave       []string           `json:"modules_to_save"`
	PEFTType            string             `json:"peft_type"`
	R                   int                `json:"r"`
	RankPattern         map[string]int     `json:"rank_pattern"`
	// TargetModules is a list of module names, or a regular expression
	// string in configs written by others; ecotune writes a list.
	TargetModules json.RawMessage `json:"target_modules"`
	TaskType      string          `json:"task_type"`
	UseDoRA       bool            `json:"use_dora"`
	UseRSLoRA     bool            `json:"use_rslora"`
}

// PEFTOptions configures ExportPEFT.
type PEFTOptions struct {
	Adapter string // the LoRA adapter GGUF
	Base    string // the base model GGUF it was trained on
	Dir     string // output directory, created if needed
	// BaseModelName is base_model_name_or_path; "" reads it from the base's
	// general metadata (see BaseModelName).
	BaseModelName string
}

// PEFTSummary describes an exported or imported adapter.
type PEFTSummary struct {
	Pairs         int
	Rank          int
	Alpha         float64
	TargetModules []string
	Permuted      int // lora_B tensors whose rows were reordered (llama q and k)
	BaseModelName string
}

// BaseModelName returns the Hugging Face repository a GGUF model was
// converted from, as far as its general metadata says: the Hugging Face
// source repository or URL, else organization/name, else the name, else "".
func BaseModelName(meta *gguf.Metadata) string {
	if s, err := meta.String("general.source.huggingface.repository"); err == nil && s != "" {
		return s
	}
	for _, key := range []string{"general.source.repo_url", "general.source.url"} {
		if s, err := meta.String(key); err == nil {
			if rest, ok := strings.CutPrefix(s, "https://huggingface.co/"); ok && rest != "" {
				return strings.TrimSuffix(rest, "/")
			}
		}
	}
	name, _ := meta.String("general.name")
	if org, err := meta.String("general.organization"); err == nil && org != "" && name != "" {
		return org + "/" + name
	}
	return name
}

// ExportPEFT writes the adapter as a PEFT LoRA directory: adapter_config.json
// and adapter_model.safetensors with PEFT's keys
// (base_model.model.model.layers.N.<module>.lora_A.weight, shape [r, in], and
// lora_B.weight, [out, r]), data in the adapter's own float type, and the rows
// of lora_B for llama's q and k put back in Hugging Face's order.
func ExportPEFT(opts PEFTOptions) (*PEFTSummary, error) {
	base, a, err := openMatched(opts.Base, opts.Adapter, "peft")
	if err != nil {
		return nil, err
	}
	defer base.Close()
	defer a.Close()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("export: peft: adapter %s: %s", opts.Adapter, fmt.Sprintf(format, args...))
	}
	sum := &PEFTSummary{Pairs: len(a.Pairs), BaseModelName: opts.BaseModelName}
	if sum.BaseModelName == "" {
		sum.BaseModelName = BaseModelName(base.Meta)
	}
	// r is the most common rank; rank_pattern lists the modules with another.
	counts := map[int64]int{}
	for _, p := range a.Pairs {
		counts[p.Rank()]++
	}
	for r, n := range counts {
		if n > counts[int64(sum.Rank)] || (n == counts[int64(sum.Rank)] && r < int64(sum.Rank)) {
			sum.Rank = int(r)
		}
	}
	sum.Alpha = float64(a.Alpha)
	if a.Alpha == 0 {
		// llama.cpp's alpha 0 means scale 1; PEFT's scale is alpha/r.
		if len(counts) > 1 {
			return nil, bad("adapter.lora.alpha is 0 and ranks differ; PEFT has no per-module way to say scale 1")
		}
		sum.Alpha = float64(sum.Rank)
	}

	var tensors []safetensors.Tensor
	targets := map[string]bool{}
	rankPattern := map[string]int{}
	for _, p := range a.Pairs {
		if p.IsEmbedding() {
			return nil, bad("tensor %q: token-embedding adapters are not exported to PEFT", p.Base)
		}
		path, short, err := hfName(a.Arch, p.Base)
		if err != nil {
			return nil, bad("%v", err)
		}
		targets[short] = true
		if int(p.Rank()) != sum.Rank {
			rankPattern[path] = int(p.Rank())
		}
		dtA, err := safetensorsType(p.A)
		if err != nil {
			return nil, bad("%v", err)
		}
		dtB, err := safetensorsType(p.B)
		if err != nil {
			return nil, bad("%v", err)
		}
		aData, err := a.File.Data(p.A.Name)
		if err != nil {
			return nil, err
		}
		bData, err := a.File.Data(p.B.Name)
		if err != nil {
			return nil, err
		}
		heads, err := headsFor(a.Arch, base.Meta, p.Base)
		if err != nil {
			return nil, bad("%v", err)
		}
		if heads > 0 {
			rows, r := int(p.B.Dims[1]), int(p.B.Dims[0])
			if bData, err = permuteRows(bData, rows, r*int(dtB.Size()), heads, false); err != nil {
				return nil, bad("tensor %q: %v", p.B.Name, err)
			}
			sum.Permuted++
		} else {
			bData = slices.Clone(bData) // the mapping closes before the file is written
		}
		key := peftPrefix + path
		tensors = append(tensors,
			// ggml's ne is PyTorch's shape reversed: the same bytes.
			safetensors.Tensor{Name: key + ".lora_A.weight", DType: dtA, Shape: []int64{p.A.Dims[1], p.A.Dims[0]}, Data: slices.Clone(aData)},
			safetensors.Tensor{Name: key + ".lora_B.weight", DType: dtB, Shape: []int64{p.B.Dims[1], p.B.Dims[0]}, Data: bData})
	}
	for t := range targets {
		sum.TargetModules = append(sum.TargetModules, t)
	}
	slices.Sort(sum.TargetModules)
	tm, _ := json.Marshal(sum.TargetModules)
	cfg := PEFTConfig{
		AlphaPattern:        map[string]float64{},
		BaseModelNameOrPath: sum.BaseModelName,
		Bias:                "none",
		InferenceMode:       true,
		InitLoraWeights:     true,
		LoraAlpha:           sum.Alpha,
		PEFTType:            "LORA",
		R:                   sum.Rank,
		RankPattern:         rankPattern,
		TargetModules:       tm,
		TaskType:            "CAUSAL_LM",
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("export: peft: %w", err)
	}
	if err := safetensors.WriteFile(filepath.Join(opts.Dir, PEFTWeightsFile), tensors, map[string]string{"format": "pt"}); err != nil {
		return nil, fmt.Errorf("export: peft: %w", err)
	}
	js, err := marshalConfig(cfg)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(opts.Dir, PEFTConfigFile), js); err != nil {
		return nil, fmt.Errorf("export: peft: %w", err)
	}
	return sum, nil
}

// marshalConfig writes the config with lora_alpha as the shortest decimal
// that reads back as the same float32, so GGUF → PEFT → GGUF keeps alpha's bits.
func marshalConfig(cfg PEFTConfig) ([]byte, error) {
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("export: peft: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("export: peft: %w", err)
	}
	m["lora_alpha"] = json.RawMessage(strconv.FormatFloat(float64(float32(cfg.LoraAlpha)), 'g', -1, 32))
	m["layers_to_transform"] = json.RawMessage("null")
	m["layers_pattern"] = json.RawMessage("null")
	m["revision"] = json.RawMessage("null")
	if cfg.ModulesToSave == nil {
		m["modules_to_save"] = json.RawMessage("null")
	}
	js, err = json.MarshalIndent(m, "", "  ") // map keys sort: PEFT's order
	if err != nil {
		return nil, fmt.Errorf("export: peft: %w", err)
	}
	return append(js, '\n'), nil
}

// safetensorsType returns the dtype of an adapter tensor, which must be a
// float type both formats share.
func safetensorsType(t gguf.TensorInfo) (safetensors.DType, error) {
	switch t.Type {
	case gguf.TypeF32:
		return safetensors.F32, nil
	case gguf.TypeF16:
		return safetensors.F16, nil
	case gguf.TypeBF16:
		return safetensors.BF16, nil
	}
	return "", fmt.Errorf("tensor %q is %s; PEFT export takes F32, F16 or BF16 adapters", t.Name, t.Type)
}

// writeFileAtomic writes data to path through a temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := errors.Join(tmp.Chmod(0o644), tmp.Sync(), tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
