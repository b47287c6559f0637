package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/export"
	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/gguf"
)

// TestMergeExportImportCLI runs merge, export peft, import peft and export
// ollama on a small llama model and an adapter made by import itself.
func TestMergeExportImportCLI(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.gguf")
	require.NoError(t, factory.Init(factory.Spec{Arch: "llama", Embd: 64, Layers: 1, Heads: 4, HeadsKV: 2, FF: 96, VocabSize: 100, Seed: 1}, base))

	// A rank-2 adapter on layer 0's q projection, all ones.
	meta := &gguf.Metadata{}
	meta.Set("general.architecture", gguf.ValueOf("llama"))
	meta.Set("general.type", gguf.ValueOf("adapter"))
	meta.Set("adapter.type", gguf.ValueOf("lora"))
	meta.Set("adapter.lora.alpha", gguf.ValueOf(float32(4)))
	ones := func(n int) []byte {
		b := make([]byte, 4*n)
		for i := 0; i < n; i++ {
			b[4*i+2], b[4*i+3] = 0x80, 0x3f // 1.0
		}
		return b
	}
	adapter := filepath.Join(dir, "adapter.gguf")
	require.NoError(t, (&gguf.Builder{Meta: meta, Tensors: []gguf.Tensor{
		{TensorInfo: gguf.TensorInfo{Name: "blk.0.attn_q.weight.lora_a", Dims: []int64{64, 2}, Type: gguf.TypeF32}, Data: gguf.DataBytes(ones(128))},
		{TensorInfo: gguf.TensorInfo{Name: "blk.0.attn_q.weight.lora_b", Dims: []int64{2, 64}, Type: gguf.TypeF32}, Data: gguf.DataBytes(ones(128))},
	}}).WriteFile(adapter))

	merged := filepath.Join(dir, "merged.gguf")
	code, out, stderr := runCLI(t, "merge", "--model", base, "--adapter", adapter+":0.5", "--type", "f16", "-o", merged, "-q")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "1 of 12 tensors merged")
	f, err := gguf.Open(merged)
	require.NoError(t, err)
	scales, err := f.Meta.Float32s("ecotune.merge.scales")
	f.Close()
	require.NoError(t, err)
	assert.Equal(t, []float32{0.5}, scales)

	peft := filepath.Join(dir, "peft")
	code, out, stderr = runCLI(t, "export", "peft", "--adapter", adapter, "--model", base, "-o", peft)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "target_modules q_proj")
	assert.FileExists(t, filepath.Join(peft, export.PEFTWeightsFile))

	back := filepath.Join(dir, "back.gguf")
	code, out, stderr = runCLI(t, "import", "peft", peft, "--model", base, "-o", back)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "1 LoRA pairs")
	a, err := export.OpenAdapter(back)
	require.NoError(t, err)
	assert.Equal(t, float32(4), a.Alpha)
	a.Close()

	code, out, stderr = runCLI(t, "export", "ollama", "--model", base, "--adapter", back, "-o", filepath.Join(dir, "ollama"), "--format", "chatml")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "ollama create")

	// Usage errors exit 2; a bad file exits 1 naming it.
	code, _, _ = runCLI(t, "merge", "--model", base, "--adapter", adapter, "-o", merged, "extra")
	assert.Equal(t, exitUsage, code)
	code, _, _ = runCLI(t, "import", "peft", "--model", base)
	assert.Equal(t, exitUsage, code)
	code, _, stderr = runCLI(t, "merge", "--model", base, "--adapter", base, "-o", merged)
	assert.Equal(t, exitError, code)
	assert.Contains(t, stderr, "general.type")
	code, _, _ = runCLI(t, "merge", "--model", base, "--adapter", adapter, "--type", "q3_zz", "-o", merged)
	assert.Equal(t, exitUsage, code)
}

func TestParseAdapterScale(t *testing.T) {
	for in, want := range map[string]export.AdapterScale{
		"a.gguf":          {Path: "a.gguf", Scale: 1},
		"a.gguf:0.5":      {Path: "a.gguf", Scale: 0.5},
		"dir:x/a.gguf":    {Path: "dir:x/a.gguf", Scale: 1},
		"dir:x/a.gguf:-2": {Path: "dir:x/a.gguf", Scale: -2},
	} {
		got, err := parseAdapterScale(in)
		require.NoError(t, err)
		assert.Equal(t, want, got, in)
	}
}

// TestExportONNXCLI runs export onnx with and without the KV cache, and its errors.
func TestExportONNXCLI(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.gguf")
	require.NoError(t, factory.Init(factory.Spec{Arch: "llama", Embd: 64, Layers: 1, Heads: 4, HeadsKV: 2, FF: 96, VocabSize: 100, Seed: 1}, base))

	out := filepath.Join(dir, "model.onnx")
	code, stdout, stderr := runCLI(t, "export", "onnx", "--model", base, "-o", out, "-q")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "wrote "+out+" (llama, 1 layers, 4/2 heads, vocab 100, no KV cache)")
	assert.FileExists(t, out)

	code, stdout, stderr = runCLI(t, "export", "onnx", "--model", base, "-o", out, "--kv-cache", "--external-data")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "KV cache inputs/outputs")
	assert.Contains(t, stdout, "weights in "+out+".data")
	assert.FileExists(t, out+".data")

	code, _, _ = runCLI(t, "export", "onnx", "--model", base, "-o", out, "extra")
	assert.Equal(t, exitUsage, code)
	phi2 := filepath.Join(dir, "phi2.gguf")
	require.NoError(t, factory.Init(factory.Spec{Arch: "phi2", Embd: 64, Layers: 1, Heads: 4, FF: 96, VocabSize: 100, Seed: 1}, phi2))
	code, _, stderr = runCLI(t, "export", "onnx", "--model", phi2, "-o", out)
	assert.Equal(t, exitError, code)
	assert.Contains(t, stderr, `architecture "phi2"`)
}
