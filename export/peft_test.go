package export_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/export"
	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/quant"
	"github.com/ecotune/ecotune/safetensors"
)

// peftSpecs are the models of testdata/peft_names.txt.
var peftSpecs = map[string]factory.Spec{
	"llama": {Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96, VocabSize: 100, Seed: 1},
	"phi2":  {Arch: "phi2", Embd: 64, Layers: 2, Heads: 4, FF: 96, VocabSize: 100, Seed: 1},
	"phi3":  {Arch: "phi3", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96, VocabSize: 100, Seed: 1},
}

// peftTargets are every weight PEFT can hold for each architecture.
var peftTargets = []string{"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_qkv.weight", "attn_output.weight",
	"ffn_gate.weight", "ffn_up.weight", "ffn_down.weight", "output.weight"}

func initModel(t testing.TB, spec factory.Spec) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), spec.Arch+".gguf")
	require.NoError(t, factory.Init(spec, path))
	return path
}

// readFixture returns testdata/peft_names.txt's keys and shapes per architecture.
func readFixture(t *testing.T) map[string]map[string][]int64 {
	t.Helper()
	f, err := os.Open("testdata/peft_names.txt")
	require.NoError(t, err)
	defer f.Close()
	out := map[string]map[string][]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		require.Len(t, fields, 3, line)
		var shape []int64
		for _, s := range strings.Split(fields[2], ",") {
			n, err := strconv.ParseInt(s, 10, 64)
			require.NoError(t, err, line)
			shape = append(shape, n)
		}
		if out[fields[0]] == nil {
			out[fields[0]] = map[string][]int64{}
		}
		out[fields[0]][fields[1]] = shape
	}
	require.NoError(t, sc.Err())
	return out
}

// TestPEFTNamesAndShapes exports an adapter on every weight of llama, phi2
// and phi3 models and compares the keys and shapes with the fixture written
// from PEFT's conventions.
func TestPEFTNamesAndShapes(t *testing.T) {
	fixture := readFixture(t)
	wantTargets := map[string][]string{
		"llama": {"down_proj", "gate_proj", "k_proj", "lm_head", "o_proj", "q_proj", "up_proj", "v_proj"},
		"phi2":  {"dense", "fc1", "fc2", "k_proj", "lm_head", "q_proj", "v_proj"},
		"phi3":  {"down_proj", "gate_up_proj", "lm_head", "o_proj", "qkv_proj"},
	}
	for arch, spec := range peftSpecs {
		t.Run(arch, func(t *testing.T) {
			base := initModel(t, spec)
			a := writeAdapter(t, base, adapterSpec{targets: peftTargets, rank: 4, alpha: 8, seed: 1, stdB: 0.1})
			dir := filepath.Join(t.TempDir(), "peft")
			sum, err := export.ExportPEFT(export.PEFTOptions{Adapter: a, Base: base, Dir: dir})
			require.NoError(t, err)
			assert.Equal(t, wantTargets[arch], sum.TargetModules)
			if arch == "llama" {
				assert.Equal(t, 4, sum.Permuted, "q and k of both layers")
			} else {
				assert.Zero(t, sum.Permuted)
			}

			sf, err := safetensors.Open(filepath.Join(dir, export.PEFTWeightsFile))
			require.NoError(t, err)
			defer sf.Close()
			assert.Equal(t, map[string]string{"format": "pt"}, sf.Metadata)
			want := fixture[arch]
			require.NotEmpty(t, want)
			var layer0 int
			for _, ti := range sf.Tensors {
				assert.Equal(t, safetensors.F32, ti.DType)
				if strings.Contains(ti.Name, ".layers.1.") {
					w, ok := want[strings.Replace(ti.Name, ".layers.1.", ".layers.0.", 1)]
					assert.True(t, ok, "unexpected key %s", ti.Name)
					assert.Equal(t, w, ti.Shape, ti.Name)
					continue
				}
				layer0++
				assert.Equal(t, want[ti.Name], ti.Shape, ti.Name)
			}
			assert.Equal(t, len(want), layer0)
			assert.Len(t, sf.Tensors, 2*len(want)-2, "two layers and lm_head")

			var cfg map[string]any
			raw, err := os.ReadFile(filepath.Join(dir, export.PEFTConfigFile))
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(raw, &cfg))
			for k, v := range map[string]any{"r": 4.0, "lora_alpha": 8.0, "task_type": "CAUSAL_LM", "peft_type": "LORA",
				"use_rslora": false, "bias": "none", "fan_in_fan_out": false, "base_model_name_or_path": "ecotune-" + arch + "-random"} {
				assert.Equal(t, v, cfg[k], k)
			}
			var tm []string
			for _, x := range cfg["target_modules"].([]any) {
				tm = append(tm, x.(string))
			}
			assert.Equal(t, wantTargets[arch], tm)
		})
	}
}

// ggufTensors returns every tensor of a GGUF file: info and bytes.
func ggufTensors(t *testing.T, path string) (map[string]gguf.TensorInfo, map[string][]byte, float32) {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	infos, data := map[string]gguf.TensorInfo{}, map[string][]byte{}
	for _, ti := range f.Tensors {
		ti.Offset = 0
		infos[ti.Name] = ti
		b, err := f.Data(ti.Name)
		require.NoError(t, err)
		data[ti.Name] = slices.Clone(b)
	}
	alpha, err := f.Meta.Float32("adapter.lora.alpha")
	require.NoError(t, err)
	return infos, data, alpha
}

// TestPEFTRoundTrip: GGUF → PEFT → GGUF gives back every tensor bit for bit
// (names, shapes, types, bytes) and alpha, for F32, F16 and BF16 adapters and
// llama, qwen2, gemma2, phi2 and phi3; PEFT → GGUF → PEFT gives the same safetensors bytes.
func TestPEFTRoundTrip(t *testing.T) {
	specs := map[string]factory.Spec{
		// qwen2 and gemma2 share llama's module names but keep HF's q/k row order.
		"qwen2":  {Arch: "qwen2", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96, VocabSize: 100, Seed: 1},
		"gemma2": {Arch: "gemma2", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96, VocabSize: 100, Seed: 1},
	}
	for arch, spec := range peftSpecs {
		specs[arch] = spec
	}
	for arch, spec := range specs {
		for _, typ := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16} {
			t.Run(arch+"/"+typ.String(), func(t *testing.T) {
				base := initModel(t, spec)
				a := writeAdapter(t, base, adapterSpec{targets: peftTargets, rank: 6, alpha: 7.3, seed: 2, stdB: 0.1})
				if typ != gguf.TypeF32 {
					a = retype(t, a, typ)
				}
				dir := filepath.Join(t.TempDir(), "peft")
				_, err := export.ExportPEFT(export.PEFTOptions{Adapter: a, Base: base, Dir: dir})
				require.NoError(t, err)
				back := filepath.Join(t.TempDir(), "back.gguf")
				sum, err := export.ImportPEFT(export.ImportOptions{Dir: dir, Base: base, Out: back})
				require.NoError(t, err)
				assert.Equal(t, 6, sum.Rank)
				if arch == "llama" {
					assert.Equal(t, 4, sum.Permuted)
				} else {
					assert.Zero(t, sum.Permuted, "only llama's converter permutes q and k")
				}

				wi, wd, wa := ggufTensors(t, a)
				gi, gd, ga := ggufTensors(t, back)
				assert.Equal(t, wa, ga, "alpha")
				assert.Equal(t, wi, gi, "names, shapes and types")
				for name := range wd {
					assert.True(t, bytes.Equal(wd[name], gd[name]), "%s: bytes differ", name)
				}
				// The imported adapter is a valid llama.cpp adapter for the base.
				ad, err := export.OpenAdapter(back)
				require.NoError(t, err)
				f, err := gguf.Open(base)
				require.NoError(t, err)
				assert.NoError(t, ad.CheckBase(f))
				f.Close()
				ad.Close()

				dir2 := filepath.Join(t.TempDir(), "peft2")
				_, err = export.ExportPEFT(export.PEFTOptions{Adapter: back, Base: base, Dir: dir2})
				require.NoError(t, err)
				for _, name := range []string{export.PEFTWeightsFile, export.PEFTConfigFile} {
					x, err := os.ReadFile(filepath.Join(dir, name))
					require.NoError(t, err)
					y, err := os.ReadFile(filepath.Join(dir2, name))
					require.NoError(t, err)
					assert.True(t, bytes.Equal(x, y), "%s differs after a round trip", name)
				}
			})
		}
	}
}

// retype rewrites an adapter with tensors of type typ (F16 or BF16).
func retype(t *testing.T, path string, typ gguf.Type) string {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	b := f.Builder()
	for i := range b.Tensors {
		x := tensorF32(t, f, b.Tensors[i].Name)
		h, err := quant.Quantize(ggml.Type(typ), x, int(b.Tensors[i].Dims[0]))
		require.NoError(t, err)
		b.Tensors[i].Type = typ
		b.Tensors[i].Data = gguf.DataBytes(h)
	}
	out := filepath.Join(t.TempDir(), typ.String()+".gguf")
	require.NoError(t, b.WriteFile(out))
	return out
}
