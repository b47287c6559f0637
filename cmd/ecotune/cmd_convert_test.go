package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/quant"
	"github.com/ecotune/ecotune/safetensors"
)

// TestConvertExportHFCLI: a llama model with Llama 3's tokenizer goes out with
// "export hf" and back with "convert", first lossless (the same tensors), then
// to Q8_0 through quant; the pre-tokenizer check confirms llama-bpe; bad input
// gets one line and exit codes 1 (bad checkpoint) or 2 (bad usage).
func TestConvertExportHFCLI(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.gguf")
	require.NoError(t, factory.Init(factory.Spec{Arch: "llama", Embd: 64, Layers: 1, Heads: 4, HeadsKV: 2, FF: 96,
		VocabFile: testenv.Vocab(t, "llama-bpe"), Seed: 1}, base))
	hf := filepath.Join(dir, "hf")
	code, stdout, stderr := runCLI(t, "export", "hf", "--model", base, "-o", hf, "-q")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "wrote "+hf+" (llama, 12 tensors")
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		assert.FileExists(t, filepath.Join(hf, f))
	}

	back := filepath.Join(dir, "back.gguf")
	code, stdout, stderr = runCLI(t, "convert", hf, "-o", back, "-q")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "LlamaForCausalLM → llama, 12 tensors (F32)")
	assert.Contains(t, stdout, "pre-tokenizer llama-bpe confirmed")
	a, err := gguf.Open(base)
	require.NoError(t, err)
	defer a.Close()
	b, err := gguf.Open(back)
	require.NoError(t, err)
	defer b.Close()
	for _, ta := range a.Tensors {
		da, _ := a.Data(ta.Name)
		db, err := b.Data(ta.Name)
		require.NoError(t, err)
		assert.Equal(t, da, db, ta.Name)
	}

	q8 := filepath.Join(dir, "q8.gguf")
	code, stdout, stderr = runCLI(t, "convert", hf, "-o", q8, "--type", "q8_0", "-q")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "(Q8_0)")
	f, err := gguf.Open(q8)
	require.NoError(t, err)
	info, _ := f.Tensor("blk.0.attn_q.weight")
	assert.Equal(t, gguf.TypeQ8_0, info.Type)
	q8data, err := f.Data("blk.0.attn_q.weight")
	require.NoError(t, err)
	wantF32, err := quant.Dequantize(ggml.TypeQ8_0, q8data, 64*64)
	require.NoError(t, err)

	// A quantized model exports dequantized (F32) and converts back to those values.
	hf2 := filepath.Join(dir, "hf-from-q8")
	code, _, stderr = runCLI(t, "export", "hf", "--model", q8, "-o", hf2, "-q")
	require.Equal(t, 0, code, stderr)
	f.Close()
	back2 := filepath.Join(dir, "back2.gguf")
	code, _, stderr = runCLI(t, "convert", hf2, "-o", back2, "-q")
	require.Equal(t, 0, code, stderr)
	g, err := gguf.Open(back2)
	require.NoError(t, err)
	got, err := g.Data("blk.0.attn_q.weight")
	require.NoError(t, err)
	assert.Equal(t, safetensors.Float32Bytes(wantF32), got, "the Q8_0 values, dequantized exactly (row order restored both ways)")
	g.Close()
	left, _ := os.ReadDir(dir)
	for _, e := range left {
		assert.False(t, strings.HasPrefix(e.Name(), "."), "temporary file %s left behind", e.Name())
	}

	// generate takes the folder itself: converted into the cache once, then reused.
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	code, stdout, stderr = runCLI(t, "generate", "-m", hf, "-p", "Rivers", "-n", "3")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "converting the Hugging Face checkpoint "+hf)
	first := stdout
	code, stdout, stderr = runCLI(t, "generate", "-m", hf, "-p", "Rivers", "-n", "3")
	require.Equal(t, 0, code, stderr)
	assert.NotContains(t, stderr, "converting")
	assert.Equal(t, first, stdout, "the same model, greedy: the same text")
	cached, _ := filepath.Glob(filepath.Join(dir, "cache", "ecotune", "converted", "hf-*.gguf"))
	assert.Len(t, cached, 1)

	code, _, stderr = runCLI(t, "convert", hf, "-o", filepath.Join(dir, "x.gguf"), "--type", "q3_x")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `unknown type "q3_x"`)
	require.NoError(t, os.Remove(filepath.Join(hf, "config.json")))
	code, _, stderr = runCLI(t, "convert", hf, "-o", filepath.Join(dir, "x.gguf"))
	assert.Equal(t, exitError, code)
	assert.Contains(t, stderr, "config.json")
	assert.NoFileExists(t, filepath.Join(dir, "x.gguf"))
}
