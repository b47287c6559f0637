package export

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
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
	base, err := gguf.Open(opts.Base)
	if err != nil {
		return nil, fmt.Errorf("export: peft: base model: %w", err)
	}
	defer base.Close()
	a, err := OpenAdapter(opts.Adapter)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if err := a.CheckBase(base); err != nil {
		return nil, err
	}
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

// ImportOptions configures ImportPEFT.
type ImportOptions struct {
	Dir  string // a PEFT LoRA directory (adapter_config.json, adapter_model.safetensors)
	Base string // the base model GGUF the adapter is for
	Out  string // the adapter GGUF to write, atomically
}

// ImportPEFT converts a PEFT LoRA directory into a llama.cpp adapter GGUF for
// the base model: keys renamed to <base tensor>.lora_a/.lora_b, the rows of
// lora_B for llama's q and k put in GGUF's order, alpha from lora_alpha
// (rsLoRA's alpha/√r folded in as alpha·√r). A module whose alpha_pattern or
// rank differs in a way one GGUF alpha cannot express gets the ratio folded
// into its lora_B (then stored as F32).
func ImportPEFT(opts ImportOptions) (*PEFTSummary, error) {
	cfgPath := filepath.Join(opts.Dir, PEFTConfigFile)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("export: import peft: %s: %s", opts.Dir, fmt.Sprintf(format, args...))
	}
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("export: import peft: %w", err)
	}
	var cfg PEFTConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("export: import peft: %s: %w", cfgPath, err)
	}
	switch {
	case cfg.PEFTType != "LORA":
		return nil, bad("%s: peft_type is %q, want \"LORA\"", PEFTConfigFile, cfg.PEFTType)
	case cfg.FanInFanOut:
		return nil, bad("%s: fan_in_fan_out is true (GPT-2-style Conv1D weights); only Linear layers are supported", PEFTConfigFile)
	case cfg.UseDoRA:
		return nil, bad("%s: use_dora is true; DoRA's magnitude vectors have no llama.cpp equivalent", PEFTConfigFile)
	case len(cfg.ModulesToSave) > 0:
		return nil, bad("%s: modules_to_save %v would need full weights, not a LoRA adapter", PEFTConfigFile, cfg.ModulesToSave)
	case cfg.Bias != "" && cfg.Bias != "none":
		return nil, bad("%s: bias is %q; llama.cpp adapters carry no biases", PEFTConfigFile, cfg.Bias)
	case cfg.R <= 0:
		return nil, bad("%s: r is %d, want > 0", PEFTConfigFile, cfg.R)
	case math.IsNaN(cfg.LoraAlpha) || math.IsInf(cfg.LoraAlpha, 0) || cfg.LoraAlpha == 0:
		return nil, bad("%s: lora_alpha %v is not a finite nonzero number", PEFTConfigFile, cfg.LoraAlpha)
	}
	wPath := filepath.Join(opts.Dir, PEFTWeightsFile)
	sf, err := safetensors.Open(wPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, e := os.Stat(filepath.Join(opts.Dir, "adapter_model.bin")); e == nil {
				return nil, bad("only %s is read, not the pickled adapter_model.bin; save with safe_serialization=True", PEFTWeightsFile)
			}
		}
		return nil, fmt.Errorf("export: import peft: %w", err)
	}
	defer sf.Close()
	base, err := gguf.Open(opts.Base)
	if err != nil {
		return nil, fmt.Errorf("export: import peft: base model: %w", err)
	}
	defer base.Close()
	arch, err := base.Meta.String("general.architecture")
	if err != nil {
		return nil, fmt.Errorf("export: import peft: base model %s: %w", opts.Base, err)
	}

	// Group the keys into pairs by module path.
	type peftPair struct{ a, b *safetensors.TensorInfo }
	pairs := map[string]*peftPair{} // GGUF base name -> pair
	paths := map[string]string{}    // GGUF base name -> module path
	for i := range sf.Tensors {
		t := &sf.Tensors[i]
		rest, ok := strings.CutPrefix(t.Name, peftPrefix)
		var path string
		var isA bool
		switch {
		case !ok:
		case strings.HasSuffix(rest, ".lora_A.weight"):
			path, isA = strings.TrimSuffix(rest, ".lora_A.weight"), true
		case strings.HasSuffix(rest, ".lora_B.weight"):
			path = strings.TrimSuffix(rest, ".lora_B.weight")
		}
		if path == "" {
			return nil, bad("%s: tensor %q is not a PEFT LoRA weight (base_model.model.<module>.lora_A/lora_B.weight)", PEFTWeightsFile, t.Name)
		}
		name, err := ggufName(arch, path)
		if err != nil {
			return nil, bad("%s: tensor %q: %v", PEFTWeightsFile, t.Name, err)
		}
		if len(t.Shape) != 2 || t.Shape[0] <= 0 || t.Shape[1] <= 0 {
			return nil, bad("%s: tensor %q has shape %v, want 2 positive dimensions", PEFTWeightsFile, t.Name, t.Shape)
		}
		p := pairs[name]
		if p == nil {
			p = &peftPair{}
			pairs[name], paths[name] = p, path
		}
		if isA {
			p.a = t
		} else {
			p.b = t
		}
	}
	if len(pairs) == 0 {
		return nil, bad("%s holds no LoRA weights", PEFTWeightsFile)
	}

	alpha := cfg.LoraAlpha
	if cfg.UseRSLoRA {
		// PEFT scales by alpha/√r, llama.cpp by alpha/r.
		alpha *= math.Sqrt(float64(cfg.R))
	}
	sum := &PEFTSummary{Pairs: len(pairs), Rank: cfg.R, Alpha: float64(float32(alpha)), BaseModelName: cfg.BaseModelNameOrPath}
	meta := &gguf.Metadata{}
	meta.Set("general.architecture", gguf.ValueOf(arch))
	meta.Set("general.type", gguf.ValueOf("adapter"))
	meta.Set("general.name", gguf.ValueOf("PEFT LoRA "+filepath.Base(filepath.Clean(opts.Dir))))
	if cfg.BaseModelNameOrPath != "" {
		meta.Set("general.base_model.count", gguf.ValueOf(uint32(1)))
		meta.Set("general.base_model.0.name", gguf.ValueOf(cfg.BaseModelNameOrPath))
	}
	meta.Set("adapter.type", gguf.ValueOf("lora"))
	meta.Set("adapter.lora.alpha", gguf.ValueOf(float32(alpha)))
	b := &gguf.Builder{Meta: meta}
	targets := map[string]bool{}
	// Pairs in the base model's tensor order: deterministic and familiar.
	for _, w := range base.Tensors {
		p, ok := pairs[w.Name]
		if !ok {
			continue
		}
		delete(pairs, w.Name)
		path := paths[w.Name]
		if p.a == nil || p.b == nil {
			return nil, bad("%s: module %s lacks its lora_A or lora_B", PEFTWeightsFile, path)
		}
		if len(w.Dims) != 2 {
			return nil, bad("base tensor %s has shape %v; LoRA adapts 2-D weights", w.Name, w.Dims)
		}
		r := p.a.Shape[0]
		// PyTorch shapes: A [r, in], B [out, r]; base ne = [in, out].
		if p.a.Shape[1] != w.Dims[0] || p.b.Shape[0] != w.Dims[1] || p.b.Shape[1] != r {
			return nil, bad("%s: module %s: lora_A %v and lora_B %v do not fit base tensor %s (ne %v; want lora_A [r, %d], lora_B [%d, r])",
				PEFTWeightsFile, path, p.a.Shape, p.b.Shape, w.Name, w.Dims, w.Dims[0], w.Dims[1])
		}
		targets[path[strings.LastIndex(path, ".")+1:]] = true
		typA, aData, err := ggufData(sf, p.a)
		if err != nil {
			return nil, bad("%v", err)
		}
		typB, bData, err := ggufData(sf, p.b)
		if err != nil {
			return nil, bad("%v", err)
		}
		// The scale PEFT gives this module, over the one llama.cpp will.
		modAlpha := cfg.LoraAlpha
		if v, ok := patternValue(cfg.AlphaPattern, path); ok {
			modAlpha = v
		}
		if modAlpha != cfg.LoraAlpha || (cfg.UseRSLoRA && r != int64(cfg.R)) {
			want := modAlpha / float64(r)
			if cfg.UseRSLoRA {
				want = modAlpha / math.Sqrt(float64(r))
			}
			factor := want * float64(r) / float64(float32(alpha))
			typB, bData, err = scaleF32(sf, p.b, factor)
			if err != nil {
				return nil, bad("%v", err)
			}
		}
		heads, err := headsFor(arch, base.Meta, w.Name)
		if err != nil {
			return nil, bad("%v", err)
		}
		if heads > 0 {
			info, _ := gguf.TypeInfo(typB)
			if bData, err = permuteRows(bData, int(p.b.Shape[0]), int(r*info.TypeSize), heads, true); err != nil {
				return nil, bad("%s: tensor %q: %v", PEFTWeightsFile, p.b.Name, err)
			}
			sum.Permuted++
		}
		b.Tensors = append(b.Tensors,
			gguf.Tensor{TensorInfo: gguf.TensorInfo{Name: w.Name + ".lora_a", Dims: []int64{p.a.Shape[1], r}, Type: typA}, Data: gguf.DataBytes(aData)},
			gguf.Tensor{TensorInfo: gguf.TensorInfo{Name: w.Name + ".lora_b", Dims: []int64{r, p.b.Shape[0]}, Type: typB}, Data: gguf.DataBytes(bData)})
	}
	if len(pairs) > 0 {
		left := slices.Sorted(maps.Keys(pairs))
		return nil, bad("%s: module %s maps to %s, which the base model %s lacks (wrong base model?)", PEFTWeightsFile, paths[left[0]], left[0], opts.Base)
	}
	for t := range targets {
		sum.TargetModules = append(sum.TargetModules, t)
	}
	slices.Sort(sum.TargetModules)
	if err := b.WriteFile(opts.Out); err != nil {
		return nil, fmt.Errorf("export: import peft: %w", err)
	}
	return sum, nil
}

// patternValue looks a module up in PEFT's alpha_pattern or rank_pattern,
// whose keys name a module by its full path or a suffix of it.
func patternValue(pattern map[string]float64, path string) (float64, bool) {
	if v, ok := pattern[path]; ok {
		return v, true
	}
	keys := make([]string, 0, len(pattern))
	for k := range pattern {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if strings.HasSuffix(path, "."+k) {
			return pattern[k], true
		}
	}
	return 0, false
}

// ggufData returns a safetensors tensor's bytes in a GGUF float type: F32,
// F16 and BF16 as they are (the bytes are the same), F64 converted to F32.
func ggufData(sf *safetensors.File, t *safetensors.TensorInfo) (gguf.Type, []byte, error) {
	same := map[safetensors.DType]gguf.Type{safetensors.F32: gguf.TypeF32, safetensors.F16: gguf.TypeF16, safetensors.BF16: gguf.TypeBF16}
	if typ, ok := same[t.DType]; ok {
		data, err := sf.Data(t.Name)
		return typ, data, err
	}
	switch t.DType {
	case safetensors.F64:
		x, err := sf.Float32s(t.Name)
		if err != nil {
			return 0, nil, err
		}
		return gguf.TypeF32, safetensors.Float32Bytes(x), nil
	}
	return 0, nil, fmt.Errorf("%s: tensor %q is %s; want F32, F16, BF16 or F64", PEFTWeightsFile, t.Name, t.DType)
}

// scaleF32 returns a tensor multiplied by factor, as F32.
func scaleF32(sf *safetensors.File, t *safetensors.TensorInfo, factor float64) (gguf.Type, []byte, error) {
	x, err := sf.Float32s(t.Name)
	if err != nil {
		return 0, nil, err
	}
	out := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(float32(float64(v)*factor)))
	}
	return gguf.TypeF32, out, nil
}
