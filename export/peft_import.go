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
	"strings"

	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/safetensors"
)

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
		wantR := int64(cfg.R)
		if v, ok := patternValue(ranksAsFloats(cfg.RankPattern), path); ok {
			wantR = int64(v)
		}
		if r != wantR {
			return nil, bad("%s: module %s has rank %d (lora_A %v), but %s says r %d", PEFTWeightsFile, path, r, p.a.Shape, PEFTConfigFile, wantR)
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
	// A NaN or infinity in an adapter poisons every output of the model it is applied
	// to; it is a broken file, not a value to carry over.
	if x, err := sf.Float32s(t.Name); err == nil {
		for i, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return 0, nil, fmt.Errorf("%s: tensor %q: element %d is %v, want finite values", PEFTWeightsFile, t.Name, i, v)
			}
		}
	}
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

// ranksAsFloats is PEFT's rank_pattern in the form patternValue looks up.
func ranksAsFloats(p map[string]int) map[string]float64 {
	out := make(map[string]float64, len(p))
	for k, v := range p {
		out[k] = float64(v)
	}
	return out
}
