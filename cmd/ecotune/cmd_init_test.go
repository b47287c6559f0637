package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/gguf"
)

func TestInitHelp(t *testing.T) {
	code, out, stderr := runCLI(t, "init", "--help")
	require.Equal(t, 0, code, stderr)
	for _, want := range []string{"--arch", "--dims", "--vocab", "--type", "--tied", "--seed", "--output", "Example:", "n_head_kv"} {
		assert.Contains(t, out, want)
	}
	for _, a := range factory.Architectures() {
		assert.Contains(t, out, a)
	}
}

func TestInitUsageErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.gguf")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"init", "--vocab-size", "100"}, "give the output path with -o FILE.gguf"},
		{[]string{"init", "--vocab-size", "100", "-o", out, "extra"}, "unexpected arguments [extra]"},
		{[]string{"init", "-o", out}, "give --vocab FILE.gguf"},
		{[]string{"init", "--vocab-size", "100", "-o", out, "--dims", "n_embd"}, `"n_embd" is not key=value`},
		{[]string{"init", "--vocab-size", "100", "-o", out, "--dims", "n_heads=4"}, `unknown key "n_heads"`},
		{[]string{"init", "--vocab-size", "100", "-o", out, "--type", "q4_0"}, `--type "q4_0": want f32 or f16`},
		{[]string{"init", "--vocab-size", "100", "-o", out, "--arch", "mamba"}, `unknown architecture "mamba"`},
		{[]string{"init", "--vocab-size", "100", "-o", out, "--dims", "n_embd=64,n_layer=1,n_head=4,n_head_kv=3,n_ff=64"}, "n_head 4 is not a multiple of n_head_kv 3"},
		{[]string{"init", "--vocab-size", "100", "-o", out, "--seed", "x"}, "invalid value"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		assert.Equal(t, exitUsage, code, "%v: %s", c.args, stderr)
		assert.Contains(t, stderr, c.want, c.args)
		assert.Contains(t, stderr, "hint:", c.args)
	}
	_, err := os.Stat(out)
	assert.True(t, os.IsNotExist(err), "no usage error writes a file")

	// A vocabulary file that is not there is an error (exit 1) with a hint.
	code, _, stderr := runCLI(t, "init", "--vocab", filepath.Join(t.TempDir(), "none.gguf"), "-o", out)
	assert.Equal(t, exitError, code, stderr)
	assert.Contains(t, stderr, "none.gguf")
	assert.Contains(t, stderr, "hint: check the path")
}

func TestInitWritesModel(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "tiny.gguf")
	code, stdout, stderr := runCLI(t, "init", "--arch", "llama", "--dims", "n_embd=64,n_layer=2,n_head=4,n_head_kv=2,n_ff=128",
		"--vocab-size", "300", "--seed", "9", "-o", out)
	require.Equal(t, 0, code, stderr)

	// llama: token_embd, 9 tensors per block, output_norm, output; parameters
	// by hand: embeddings and output 2·300·64, per block 2 norms of 64, q and
	// output 64·64 each, k and v 64·32 each, gate/up/down 3·64·128.
	const tensors = 1 + 9*2 + 2
	const params = 2*300*64 + 2*(2*64+2*64*64+2*64*32+3*64*128) + 64
	st, err := os.Stat(out)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("wrote %s: llama, %d tensors, %.2fM parameters, %.2f MiB\n", out, tensors, params/1e6, float64(st.Size())/(1<<20)), stdout)

	f, err := gguf.Open(out)
	require.NoError(t, err)
	defer f.Close()
	assert.Len(t, f.Tensors, tensors)
	var n int64
	for _, ti := range f.Tensors {
		e, _ := ti.Elements()
		n += e
	}
	assert.EqualValues(t, params, n)
	kv, err := f.Meta.Int("llama.attention.head_count_kv")
	require.NoError(t, err)
	assert.EqualValues(t, 2, kv)

	// The same command again gives the same bytes; F16 and --tied change the file.
	again := filepath.Join(dir, "again.gguf")
	code, _, stderr = runCLI(t, "init", "--arch", "llama", "--dims", "n_embd=64,n_layer=2,n_head=4,n_head_kv=2,n_ff=128",
		"--vocab-size", "300", "--seed", "9", "-o", again)
	require.Equal(t, 0, code, stderr)
	a, err := os.ReadFile(out)
	require.NoError(t, err)
	b, err := os.ReadFile(again)
	require.NoError(t, err)
	assert.Equal(t, a, b, "same flags and seed: identical bytes")

	tied := filepath.Join(dir, "tied.gguf")
	code, stdout, stderr = runCLI(t, "init", "--arch", "qwen2", "--dims", "n_embd=64,n_layer=1,n_head=4,n_ff=128",
		"--vocab-size", "300", "--type", "f16", "--tied", "--name", "my-model", "-o", tied)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "qwen2, 14 tensors") // token_embd, 12 per block, output_norm
	g, err := gguf.Open(tied)
	require.NoError(t, err)
	defer g.Close()
	_, hasOutput := g.Tensor("output.weight")
	assert.False(t, hasOutput)
	q, ok := g.Tensor("blk.0.attn_q.weight")
	require.True(t, ok)
	assert.Equal(t, gguf.TypeF16, q.Type)
	name, err := g.Meta.String("general.name")
	require.NoError(t, err)
	assert.Equal(t, "my-model", name)
}
