package export_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/export"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/testenv"
)

// editAdapter rewrites the adapter at path with edit applied to its builder.
func editAdapter(t *testing.T, path string, edit func(b *gguf.Builder)) string {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	b := f.Builder()
	edit(b)
	out := filepath.Join(t.TempDir(), "edited.gguf")
	require.NoError(t, b.WriteFile(out))
	return out
}

// TestAdapterValidation: every way an adapter can be wrong for its base gives
// an error naming the adapter and the offending key or tensor, before any
// output is written.
func TestAdapterValidation(t *testing.T) {
	base := testenv.Stories(t)
	good := writeAdapter(t, base, adapterSpec{targets: []string{"attn_q.weight", "ffn_down.weight"}, rank: 4, alpha: 8, seed: 1, stdB: 0.01})
	a, err := export.OpenAdapter(good)
	require.NoError(t, err)
	assert.Equal(t, "llama", a.Arch)
	assert.Equal(t, float32(8), a.Alpha)
	assert.Len(t, a.Pairs, 10)
	assert.Equal(t, int64(4), a.Rank())
	p, ok := a.Pair("blk.2.ffn_down.weight")
	require.True(t, ok)
	assert.InDelta(t, 0.5*8/4, a.Scale(p, 0.5), 1e-12)
	require.NoError(t, a.Close())

	cases := map[string]struct {
		edit func(b *gguf.Builder)
		want string
	}{
		"model not adapter": {func(b *gguf.Builder) { b.Meta.Set("general.type", gguf.ValueOf("model")) }, `general.type is "model"`},
		"not lora":          {func(b *gguf.Builder) { b.Meta.Set("adapter.type", gguf.ValueOf("control_vector")) }, "adapter.type"},
		"wrong arch":        {func(b *gguf.Builder) { b.Meta.Set("general.architecture", gguf.ValueOf("phi3")) }, `"phi3" does not match`},
		"alpha type":        {func(b *gguf.Builder) { b.Meta.Set("adapter.lora.alpha", gguf.ValueOf("8")) }, "adapter.lora.alpha"},
		"no arch":           {func(b *gguf.Builder) { b.Meta.Delete("general.architecture") }, "general.architecture"},
		"lone lora_a": {func(b *gguf.Builder) { b.Tensors = b.Tensors[:len(b.Tensors)-1] },
			"lacks its lora_a or lora_b"},
		"stray tensor": {func(b *gguf.Builder) { b.Tensors[0].Name = "blk.0.attn_q.weight" }, "neither a .lora_a nor a .lora_b"},
		"unknown base": {func(b *gguf.Builder) {
			b.Tensors[0].Name, b.Tensors[1].Name = "blk.9.attn_q.weight.lora_a", "blk.9.attn_q.weight.lora_b"
		}, `"blk.9.attn_q.weight" is not in the base model`},
		"wrong shape": {func(b *gguf.Builder) {
			// Swap a pair with ffn_down's (same rank, other shape).
			for i := range b.Tensors {
				if b.Tensors[i].Name == "blk.0.attn_q.weight.lora_a" {
					b.Tensors[i].Name = "blk.0.ffn_down.weight.lora_x"
				}
			}
			for i := range b.Tensors {
				switch b.Tensors[i].Name {
				case "blk.0.ffn_down.weight.lora_a":
					b.Tensors[i].Name = "blk.0.attn_q.weight.lora_a"
				case "blk.0.ffn_down.weight.lora_x":
					b.Tensors[i].Name = "blk.0.ffn_down.weight.lora_a"
				}
			}
		}, "do not fit base shape"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			bad := editAdapter(t, good, c.edit)
			out := filepath.Join(t.TempDir(), "merged.gguf")
			_, err := export.Merge(context.Background(), export.MergeOptions{Base: base, Adapters: []export.AdapterScale{{Path: bad, Scale: 1}}, Out: out})
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.Contains(t, err.Error(), bad, "the error names the adapter file")
			assert.NoFileExists(t, out)
		})
	}

	// The base and adapter swapped: the "base" is an adapter.
	_, err = export.Merge(context.Background(), export.MergeOptions{Base: good, Adapters: []export.AdapterScale{{Path: good, Scale: 1}}, Out: filepath.Join(t.TempDir(), "x.gguf")})
	assert.ErrorContains(t, err, "is an adapter")
	_, err = export.Merge(context.Background(), export.MergeOptions{Base: base, Out: filepath.Join(t.TempDir(), "x.gguf")})
	assert.ErrorContains(t, err, "no adapters")
}
