package export_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/export"
	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/hostile"
	"github.com/ecotune/ecotune/safetensors"
)

// peftDir writes a PEFT directory with one q_proj pair for layer 0 of the
// llama spec, after edit changes the config or tensors.
func peftDir(t *testing.T, edit func(cfg map[string]any, ts []safetensors.Tensor) []safetensors.Tensor) string {
	t.Helper()
	dir := t.TempDir()
	const r = 2
	a := make([]float32, r*nEmbd)
	b := make([]float32, nEmbd*r)
	for i := range a {
		a[i] = float32(i%7) - 3
	}
	for i := range b {
		b[i] = float32(i%5) - 2
	}
	ts := []safetensors.Tensor{
		{Name: "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", DType: safetensors.F32, Shape: []int64{r, nEmbd}, Data: safetensors.Float32Bytes(a)},
		{Name: "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", DType: safetensors.F32, Shape: []int64{nEmbd, r}, Data: safetensors.Float32Bytes(b)},
	}
	cfg := map[string]any{"peft_type": "LORA", "r": r, "lora_alpha": 4, "target_modules": []string{"q_proj"}, "bias": "none"}
	if edit != nil {
		ts = edit(cfg, ts)
	}
	require.NoError(t, safetensors.WriteFile(filepath.Join(dir, export.PEFTWeightsFile), ts, nil))
	js, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, export.PEFTConfigFile), js, 0o644))
	return dir
}

// TestImportRejects: PEFT adapters llama.cpp cannot express, or that do not
// fit the base, give an error naming the directory and what is wrong.
func TestImportRejects(t *testing.T) {
	base := initModel(t, permSpec)
	cases := map[string]struct {
		edit func(cfg map[string]any, ts []safetensors.Tensor) []safetensors.Tensor
		want string
	}{
		"dora": {func(c map[string]any, ts []safetensors.Tensor) []safetensors.Tensor { c["use_dora"] = true; return ts }, "use_dora"},
		"fan in": {func(c map[string]any, ts []safetensors.Tensor) []safetensors.Tensor {
			c["fan_in_fan_out"] = true
			return ts
		}, "fan_in_fan_out"},
		"bias": {func(c map[string]any, ts []safetensors.Tensor) []safetensors.Tensor { c["bias"] = "all"; return ts }, "bias"},
		"save": {func(c map[string]any, ts []safetensors.Tensor) []safetensors.Tensor {
			c["modules_to_save"] = []string{"lm_head"}
			return ts
		}, "modules_to_save"},
		"not lora": {func(c map[string]any, ts []safetensors.Tensor) []safetensors.Tensor {
			c["peft_type"] = "IA3"
			return ts
		}, "peft_type"},
		"zero alpha": {func(c map[string]any, ts []safetensors.Tensor) []safetensors.Tensor { c["lora_alpha"] = 0; return ts }, "lora_alpha"},
		"lone A":     {func(c map[string]any, ts []safetensors.Tensor) []safetensors.Tensor { return ts[:1] }, "lacks its lora_A or lora_B"},
		"stray": {func(c map[string]any, ts []safetensors.Tensor) []safetensors.Tensor {
			ts[0].Name = "model.layers.0.weight"
			return ts
		}, "not a PEFT LoRA weight"},
		"unknown mod": {func(c map[string]any, ts []safetensors.Tensor) []safetensors.Tensor {
			ts[0].Name = "base_model.model.model.layers.0.self_attn.zz_proj.lora_A.weight"
			return ts
		}, "zz_proj"},
		"no layer": {func(c map[string]any, ts []safetensors.Tensor) []safetensors.Tensor {
			for i := range ts {
				ts[i].Name = "base_model.model.model.layers.7." + ts[i].Name[len("base_model.model.model.layers.0."):]
			}
			return ts
		}, "lacks"},
		"shape": {func(c map[string]any, ts []safetensors.Tensor) []safetensors.Tensor {
			ts[0].Shape = []int64{nEmbd, 2}
			return ts
		}, "do not fit"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := peftDir(t, c.edit)
			out := filepath.Join(t.TempDir(), "a.gguf")
			_, err := export.ImportPEFT(export.ImportOptions{Dir: dir, Base: base, Out: out})
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.Contains(t, err.Error(), dir)
			assert.NoFileExists(t, out)
		})
	}

	// The pickled format is named in the error.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, export.PEFTConfigFile), []byte(`{"peft_type":"LORA","r":2,"lora_alpha":4}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "adapter_model.bin"), []byte("pickle"), 0o644))
	_, err := export.ImportPEFT(export.ImportOptions{Dir: dir, Base: base, Out: filepath.Join(t.TempDir(), "a.gguf")})
	assert.ErrorContains(t, err, "adapter_model.bin")
}

// TestImportAlphaPattern: a module whose alpha_pattern differs gets PEFT's
// scale through its lora_B, since one GGUF alpha serves every module; rsLoRA's
// alpha/√r becomes alpha·√r/r.
func TestImportAlphaPattern(t *testing.T) {
	base := initModel(t, permSpec)
	for name, c := range map[string]struct {
		cfg       map[string]any
		alpha     float32
		factor    float64 // on lora_B
		peftScale float64
	}{
		"plain":   {map[string]any{}, 4, 1, 4.0 / 2},
		"pattern": {map[string]any{"alpha_pattern": map[string]float64{"q_proj": 6}}, 4, 1.5, 6.0 / 2},
		"rslora":  {map[string]any{"use_rslora": true}, float32(4 * math.Sqrt2), 1, 4 / math.Sqrt2},
	} {
		t.Run(name, func(t *testing.T) {
			dir := peftDir(t, func(cfg map[string]any, ts []safetensors.Tensor) []safetensors.Tensor {
				for k, v := range c.cfg {
					cfg[k] = v
				}
				return ts
			})
			out := filepath.Join(t.TempDir(), "a.gguf")
			_, err := export.ImportPEFT(export.ImportOptions{Dir: dir, Base: base, Out: out})
			require.NoError(t, err)
			a, err := export.OpenAdapter(out)
			require.NoError(t, err)
			defer a.Close()
			assert.Equal(t, c.alpha, a.Alpha)
			p, ok := a.Pair("blk.0.attn_q.weight")
			require.True(t, ok)
			// llama.cpp's scale times the factor folded into B is PEFT's scale.
			sf, err := safetensors.Open(filepath.Join(dir, export.PEFTWeightsFile))
			require.NoError(t, err)
			defer sf.Close()
			bHF, err := sf.Float32s("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")
			require.NoError(t, err)
			bGG := tensorF32(t, a.File, p.B.Name)
			// Rows are permuted; compare the sums of squares, which a row order keeps.
			var sHF, sGG float64
			for i := range bHF {
				sHF += float64(bHF[i]) * float64(bHF[i])
				sGG += float64(bGG[i]) * float64(bGG[i])
			}
			got := a.Scale(p, 1) * math.Sqrt(sGG/sHF)
			assert.InDelta(t, c.peftScale, got, 1e-6*c.peftScale)
			assert.InDelta(t, c.factor, math.Sqrt(sGG/sHF), 1e-6)
		})
	}
}

// FuzzImportPEFT: whatever adapter_config.json and adapter_model.safetensors
// hold, ImportPEFT returns an error or a valid adapter for the base; it never
// panics and leaves no output behind an error.
func FuzzImportPEFT(f *testing.F) {
	base := filepath.Join(f.TempDir(), "base.gguf")
	require.NoError(f, factory.Init(permSpec, base))
	a := make([]float32, 2*nEmbd)
	ts := []safetensors.Tensor{
		{Name: "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", DType: safetensors.F32, Shape: []int64{2, nEmbd}, Data: safetensors.Float32Bytes(a)},
		{Name: "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", DType: safetensors.F16, Shape: []int64{nEmbd, 2}, Data: make([]byte, 2*2*nEmbd)},
	}
	seedPath := filepath.Join(f.TempDir(), "seed.safetensors")
	require.NoError(f, safetensors.WriteFile(seedPath, ts, nil))
	seed, err := os.ReadFile(seedPath)
	require.NoError(f, err)
	config := []byte(`{"peft_type":"LORA","r":2,"lora_alpha":4}`)
	f.Add(config, seed)
	// The hostile corpus's folders: broken configs with the seed's weights, and
	// hostile weights with the seed's config.
	corpus := f.TempDir()
	for _, e := range hostile.PEFT() {
		p, err := e.Write(corpus)
		require.NoError(f, err)
		if c, err := os.ReadFile(filepath.Join(p, export.PEFTConfigFile)); err == nil && len(c) < 4096 {
			f.Add(c, seed)
		}
		if w, err := os.ReadFile(filepath.Join(p, export.PEFTWeightsFile)); err == nil && len(w) < 64<<10 {
			f.Add(config, w)
		}
	}
	f.Fuzz(func(t *testing.T, config, data []byte) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, export.PEFTWeightsFile), data, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, export.PEFTConfigFile), config, 0o644))
		out := filepath.Join(dir, "a.gguf")
		if _, err := export.ImportPEFT(export.ImportOptions{Dir: dir, Base: base, Out: out}); err != nil {
			if _, serr := os.Stat(out); serr == nil {
				t.Fatalf("failed (%v) but wrote %s", err, out)
			}
			return
		}
		a, err := export.OpenAdapter(out)
		if err != nil {
			t.Fatalf("imported adapter does not open: %v", err)
		}
		defer a.Close()
		bf, err := gguf.Open(base)
		require.NoError(t, err)
		defer bf.Close()
		if err := a.CheckBase(bf); err != nil {
			t.Fatalf("imported adapter does not fit its base: %v", err)
		}
	})
}
