package hostile

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The PEFT folder layout (PeftModel.save_pretrained) and the modules ValidPEFT adapts.
const (
	peftConfigFile  = "adapter_config.json"
	peftWeightsFile = "adapter_model.safetensors"
	peftRank        = 4
)

// stTensor is one safetensors entry to encode; Begin/End override the computed offsets
// when lie is set.
type stTensor struct {
	name       string
	dtype      string
	shape      []int64
	data       []byte
	lie        bool
	begin, end int64
}

// encodeSafetensors lays tensors out back to back behind their JSON header.
func encodeSafetensors(ts []stTensor) []byte {
	var parts []string
	var data []byte
	for _, t := range ts {
		begin, end := int64(len(data)), int64(len(data)+len(t.data))
		data = append(data, t.data...)
		if t.lie {
			begin, end = t.begin, t.end
		}
		shape, _ := json.Marshal(t.shape)
		parts = append(parts, fmt.Sprintf(`%q:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, t.name, t.dtype, shape, begin, end))
	}
	header := "{" + strings.Join(parts, ",") + "}"
	for len(header)%8 != 0 {
		header += " "
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(out, header...), data...)
}

// f32s returns n small float32 values, little-endian.
func f32s(n int64, v float32) []byte {
	b := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v*float32(i%7-3)))
	}
	return b
}

// peftTensors is a valid PEFT adapter for the stories260K shapes: q_proj of layer 0
// (64 → 64) and v_proj of layer 1 (64 → 32).
func peftTensors() []stTensor {
	mod := func(path string, in, out int64) []stTensor {
		p := "base_model.model.model.layers." + path
		return []stTensor{
			{name: p + ".lora_A.weight", dtype: "F32", shape: []int64{peftRank, in}, data: f32s(peftRank*in, 0.01)},
			{name: p + ".lora_B.weight", dtype: "F32", shape: []int64{out, peftRank}, data: f32s(out*peftRank, 0.01)},
		}
	}
	return append(mod("0.self_attn.q_proj", 64, 64), mod("1.self_attn.v_proj", 64, 32)...)
}

const validPEFTConfig = `{"alpha_pattern": {}, "base_model_name_or_path": "stories260K", "bias": "none",
 "fan_in_fan_out": false, "inference_mode": true, "lora_alpha": 8, "lora_dropout": 0.0,
 "modules_to_save": null, "peft_type": "LORA", "r": 4, "rank_pattern": {},
 "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM", "use_dora": false, "use_rslora": false}`

// writePEFT writes a PEFT folder at dir; a nil config or weights leaves that file out.
func writePEFT(dir string, config, weights []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if config != nil {
		if err := os.WriteFile(filepath.Join(dir, peftConfigFile), config, 0o644); err != nil {
			return err
		}
	}
	if weights != nil {
		return os.WriteFile(filepath.Join(dir, peftWeightsFile), weights, 0o644)
	}
	return nil
}

// WriteValidPEFT writes a well-formed PEFT folder for the stories260K model at dir.
func WriteValidPEFT(dir string) error {
	return writePEFT(dir, []byte(validPEFTConfig), encodeSafetensors(peftTensors()))
}

// Safetensors returns hostile safetensors files derived from a valid PEFT weights file:
// the seeds of the reader's fuzz target and the weights of the PEFT entries. Keys name
// what is wrong; the values are the whole file.
func Safetensors() map[string][]byte {
	valid := encodeSafetensors(peftTensors())
	change := func(fn func(ts []stTensor) []stTensor) []byte { return encodeSafetensors(fn(peftTensors())) }
	hdrLen := binary.LittleEndian.Uint64(valid)
	out := map[string][]byte{
		"valid":              valid,
		"empty":              {},
		"short":              valid[:5],
		"truncated-header":   valid[:8+hdrLen/2],
		"truncated-data":     valid[:len(valid)-10],
		"header-length-huge": append(binary.LittleEndian.AppendUint64(nil, 1<<63-1), valid[8:]...),
		"header-length-lies": append(binary.LittleEndian.AppendUint64(nil, hdrLen-3), valid[8:]...),
		"header-not-json":    rawHeader("{{{{{{{{"),
		"overlapping-offsets": change(func(ts []stTensor) []stTensor {
			ts[1].lie, ts[1].begin, ts[1].end = true, 0, int64(len(ts[1].data))
			return ts
		}),
		"offsets-out-of-file": change(func(ts []stTensor) []stTensor {
			ts[3].lie, ts[3].begin, ts[3].end = true, 1<<40, 1<<40+int64(len(ts[3].data))
			return ts
		}),
		"offsets-reversed": change(func(ts []stTensor) []stTensor {
			ts[0].lie, ts[0].begin, ts[0].end = true, int64(len(ts[0].data)), 0
			return ts
		}),
		"offsets-near-2-63": change(func(ts []stTensor) []stTensor {
			ts[0].lie, ts[0].begin, ts[0].end = true, 1<<63-2, 1<<63-1
			return ts
		}),
		"shape-lies": change(func(ts []stTensor) []stTensor {
			ts[0].shape = []int64{peftRank, 65}
			return ts
		}),
		"dtype-unknown": change(func(ts []stTensor) []stTensor {
			ts[0].dtype = "F7"
			return ts
		}),
		"shape-negative": change(func(ts []stTensor) []stTensor {
			ts[0].shape = []int64{-4, -64}
			return ts
		}),
		"shape-overflow": change(func(ts []stTensor) []stTensor {
			ts[0].shape = []int64{1 << 40, 1 << 40}
			return ts
		}),
		"duplicate-name": change(func(ts []stTensor) []stTensor {
			ts[1].name = ts[0].name
			return ts
		}),
		"deep-header": rawHeader(`{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`),
	}
	return out
}

// PEFT returns hostile PEFT folders for the stories260K base.
func PEFT() []Entry {
	st := Safetensors()
	valid := st["valid"]
	var out []Entry
	add := func(name, want string, config, weights []byte) {
		out = append(out, Entry{Name: "peft-" + name, Kind: KindPEFT, Want: want, write: func(p string) error {
			return writePEFT(p, config, weights)
		}})
	}
	cfg := []byte(validPEFTConfig)
	withConfig := func(edit func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(cfg, &m); err != nil {
			panic(err) // validPEFTConfig is a constant
		}
		edit(m)
		b, _ := json.Marshal(m)
		return b
	}
	add("config-missing", peftConfigFile, nil, valid)
	add("weights-missing", peftWeightsFile, cfg, nil)
	add("config-empty", peftConfigFile, []byte{}, valid)
	add("config-not-json", peftConfigFile, []byte("r = 4\n"), valid)
	add("config-truncated", peftConfigFile, cfg[:len(cfg)/2], valid)
	add("config-r-string", `adapter_config\.json.*\br\b`, withConfig(func(m map[string]any) { m["r"] = "4" }), valid)
	add("config-r-0", `\br\b`, withConfig(func(m map[string]any) { m["r"] = 0 }), valid)
	add("config-r-huge", `\br\b`, withConfig(func(m map[string]any) { m["r"] = 1e30 }), valid)
	add("config-alpha-0", `lora_alpha`, withConfig(func(m map[string]any) { m["lora_alpha"] = 0 }), valid)
	add("config-alpha-string", `lora_alpha`, withConfig(func(m map[string]any) { m["lora_alpha"] = "eight" }), valid)
	add("config-peft-type", `peft_type`, withConfig(func(m map[string]any) { m["peft_type"] = "IA3" }), valid)
	add("config-array", peftConfigFile, []byte(`[1, 2, 3]`), valid)
	add("config-deep", peftConfigFile, []byte(strings.Repeat(`{"a":`, 100000)+"1"+strings.Repeat("}", 100000)), valid)
	add("config-invalid-utf8", peftConfigFile, []byte("{\"peft_type\": \"LO\xffRA\", \"r\": 4}"), valid)
	add("rank-differs-from-config", `\br\b|rank`, withConfig(func(m map[string]any) { m["r"] = 8 }), valid)
	for _, name := range slices.Sorted(maps.Keys(st)) {
		if name == "valid" {
			continue
		}
		add("weights-"+name, peftWeightsFile, cfg, st[name])
	}
	change := func(fn func(ts []stTensor) []stTensor) []byte { return encodeSafetensors(fn(peftTensors())) }
	add("rank-0", `q_proj|shape|rank`, cfg, change(func(ts []stTensor) []stTensor {
		ts[0].shape, ts[0].data = []int64{0, 64}, nil
		ts[1].shape, ts[1].data = []int64{64, 0}, nil
		return ts
	}))
	add("other-base-shapes", `q_proj`, cfg, change(func(ts []stTensor) []stTensor {
		ts[0].shape, ts[0].data = []int64{peftRank, 128}, f32s(peftRank*128, 0.01)
		return ts
	}))
	add("module-not-in-base", `layers\.9`, cfg, change(func(ts []stTensor) []stTensor {
		ts[2].name = strings.Replace(ts[2].name, "layers.1.", "layers.9.", 1)
		ts[3].name = strings.Replace(ts[3].name, "layers.1.", "layers.9.", 1)
		return ts
	}))
	add("lora-b-missing", `v_proj`, cfg, change(func(ts []stTensor) []stTensor { return ts[:3] }))
	add("not-lora-key", `embed_tokens|not a PEFT`, cfg, change(func(ts []stTensor) []stTensor {
		ts[0].name = "base_model.model.model.embed_tokens.weight"
		return ts
	}))
	add("dtype-i64", `q_proj|dtype|I64`, cfg, change(func(ts []stTensor) []stTensor {
		ts[0].dtype = "I64"
		ts[0].data = append(ts[0].data, ts[0].data...)
		return ts
	}))
	add("nan-weights", `q_proj|NaN|finite`, cfg, change(func(ts []stTensor) []stTensor {
		ts[0].data = f32s(peftRank*64, float32(math.NaN()))
		return ts
	}))
	add("folder-is-file", `adapter_config\.json|directory|not a`, nil, nil)
	out[len(out)-1].write = func(p string) error { return os.WriteFile(p, []byte("x"), 0o644) }
	return out
}

// rawHeader is a safetensors file with header h and no data.
func rawHeader(h string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, uint64(len(h))), h...)
}
