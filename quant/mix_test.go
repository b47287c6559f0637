package quant

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/gguf"
)

func TestUseMoreBits(t *testing.T) {
	// 8 layers: the first and last eighth, and every third layer from n/8+2.
	var got []int
	for i := range 8 {
		if useMoreBits(i, 8) {
			got = append(got, i)
		}
	}
	assert.Equal(t, []int{0, 3, 6, 7}, got)
	got = nil
	for i := range 32 {
		if useMoreBits(i, 32) {
			got = append(got, i)
		}
	}
	assert.Equal(t, []int{0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31}, got)
}

func TestBlockIndexAndOrder(t *testing.T) {
	assert.Equal(t, -1, blockIndex("token_embd.weight"))
	assert.Equal(t, 12, blockIndex("blk.12.attn_q.weight"))
	assert.Equal(t, 3, blockIndex("blk.3x"))
	assert.Equal(t, -1, blockIndex("blk.x.y"))
	names := []string{"blk.10.ffn_up.weight", "output.weight", "blk.2.attn_v.weight", "blk.2.attn_k.weight", "token_embd.weight", "blk.10.attn_q.weight"}
	infos := make([]gguf.TensorInfo, len(names))
	for i, n := range names {
		infos[i].Name = n
	}
	var got []string
	for _, i := range llamaOrder(infos) {
		got = append(got, names[i])
	}
	// Numeric block order (2 before 10), names sorted within a block.
	assert.Equal(t, []string{"output.weight", "token_embd.weight", "blk.2.attn_k.weight", "blk.2.attn_v.weight", "blk.10.attn_q.weight", "blk.10.ffn_up.weight"}, got)
}

func TestAllowsQuantization(t *testing.T) {
	for _, c := range []struct {
		name string
		dims []int64
		want bool
	}{
		{"blk.0.attn_q.weight", []int64{64, 64}, true},
		{"blk.0.attn_q.bias", []int64{64}, false},
		{"blk.0.attn_norm.weight", []int64{64}, false},
		{"blk.0.attn_q.weight", []int64{64, 1}, false}, // ggml_n_dims ignores trailing 1s
		{"blk.0.ffn_gate_inp.weight", []int64{64, 8}, false},
		{"position_embd.weight", []int64{64, 128}, false},
		{"blk.0.ffn_up_exps.weight", []int64{64, 128, 8}, true},
		{"output.weight", []int64{64, 100}, true},
	} {
		assert.Equal(t, c.want, allowsQuantization(gguf.TensorInfo{Name: c.name, Dims: c.dims}), "%s %v", c.name, c.dims)
	}
}

// plan runs the mixer over a llama-like model with n layers of width embd.
func plan(t *testing.T, ft FileType, hp hparams, embd, ff int64, tied bool) map[string]gguf.Type {
	var infos []gguf.TensorInfo
	add := func(name string, dims ...int64) {
		infos = append(infos, gguf.TensorInfo{Name: name, Dims: dims, Type: gguf.TypeF32})
	}
	add("token_embd.weight", embd, 1000)
	add("output_norm.weight", embd)
	if !tied {
		add("output.weight", embd, 1000)
	}
	for i := range hp.nLayer {
		p := fmt.Sprintf("blk.%d.", i)
		add(p+"attn_norm.weight", embd)
		add(p+"attn_q.weight", embd, embd)
		add(p+"attn_k.weight", embd, embd/4)
		add(p+"attn_v.weight", embd, embd/4)
		add(p+"attn_output.weight", embd, embd)
		add(p+"ffn_gate.weight", embd, ff)
		add(p+"ffn_up.weight", embd, ff)
		add(p+"ffn_down.weight", ff, embd)
	}
	order := llamaOrder(infos)
	names := make([]string, len(order))
	for i, j := range order {
		names[i] = infos[j].Name
	}
	m, err := newMixer(hp, ft, false, names)
	require.NoError(t, err)
	out := map[string]gguf.Type{}
	for _, j := range order {
		typ, err := m.typeFor(infos[j])
		require.NoError(t, err)
		out[infos[j].Name] = typ
	}
	return out
}

func TestMixQ4KM(t *testing.T) {
	hp := hparams{arch: "llama", nLayer: 8, nHead: 8, nHeadKV: 2}
	got := plan(t, FileTypeQ4_K_M, hp, 256, 768, false)
	assert.Equal(t, gguf.TypeQ4_K, got["token_embd.weight"])
	assert.Equal(t, gguf.TypeQ6_K, got["output.weight"])
	assert.Equal(t, gguf.TypeF32, got["output_norm.weight"])
	for i := range 8 {
		want := gguf.TypeQ4_K
		if useMoreBits(i, 8) {
			want = gguf.TypeQ6_K
		}
		assert.Equal(t, want, got[fmt.Sprintf("blk.%d.attn_v.weight", i)], "layer %d", i)
		assert.Equal(t, want, got[fmt.Sprintf("blk.%d.ffn_down.weight", i)], "layer %d", i)
		assert.Equal(t, gguf.TypeQ4_K, got[fmt.Sprintf("blk.%d.attn_q.weight", i)])
		assert.Equal(t, gguf.TypeQ4_K, got[fmt.Sprintf("blk.%d.ffn_up.weight", i)])
	}
	// Tied embeddings are treated as the output matrix.
	tied := plan(t, FileTypeQ4_K_M, hp, 256, 768, true)
	assert.Equal(t, gguf.TypeQ6_K, tied["token_embd.weight"])
}

func TestMixFallbacks(t *testing.T) {
	// Width 96: not a multiple of 256, so k-quants fall back (Q4_K -> Q5_0,
	// Q6_K -> Q8_0); ff 100 is not even a multiple of 32, so F16.
	hp := hparams{arch: "llama", nLayer: 2, nHead: 4, nHeadKV: 4}
	got := plan(t, FileTypeQ4_K_M, hp, 96, 100, false)
	assert.Equal(t, gguf.TypeQ5_0, got["blk.1.attn_q.weight"])
	assert.Equal(t, gguf.TypeQ8_0, got["blk.1.attn_v.weight"], "Q6_K for the last layer, then its fallback")
	assert.Equal(t, gguf.TypeQ5_0, got["blk.0.attn_v.weight"], "of 2 layers only the last gets more bits")
	assert.Equal(t, gguf.TypeQ8_0, got["output.weight"], "width not a multiple of 256: Q8_0")
	assert.Equal(t, gguf.TypeF16, got["blk.0.ffn_down.weight"])
	assert.Equal(t, gguf.TypeQ5_0, got["blk.0.ffn_up.weight"], "ffn_up rows are 96 wide")

	q40 := plan(t, FileTypeQ4_0, hp, 96, 100, false)
	assert.Equal(t, gguf.TypeQ4_0, q40["blk.0.attn_v.weight"])
	assert.Equal(t, gguf.TypeQ8_0, q40["output.weight"], "Q6_K does not fit 96: Q8_0")
	assert.Equal(t, gguf.TypeF16, q40["blk.0.ffn_down.weight"])
}

func TestMixIQ4NLAndQ4KS(t *testing.T) {
	hp := hparams{arch: "llama", nLayer: 16, nHead: 8, nHeadKV: 2}
	nl := plan(t, FileTypeIQ4_NL, hp, 256, 512, false)
	assert.Equal(t, gguf.TypeQ5_K, nl["blk.5.attn_v.weight"], "n_gqa >= 4")
	assert.Equal(t, gguf.TypeQ5_K, nl["blk.1.ffn_down.weight"], "first eighth of ffn_down")
	assert.Equal(t, gguf.TypeIQ4_NL, nl["blk.2.ffn_down.weight"])
	assert.Equal(t, gguf.TypeIQ4_NL, nl["blk.2.attn_q.weight"])
	ks := plan(t, FileTypeQ4_K_S, hp, 256, 512, false)
	assert.Equal(t, gguf.TypeQ5_K, ks["blk.3.attn_v.weight"])
	assert.Equal(t, gguf.TypeQ4_K, ks["blk.4.attn_v.weight"])
	assert.Equal(t, gguf.TypeQ5_K, ks["blk.1.ffn_down.weight"])
	assert.Equal(t, gguf.TypeQ4_K, ks["blk.2.ffn_down.weight"])
	q8 := plan(t, FileTypeQ8_0, hp, 256, 512, false)
	assert.Equal(t, gguf.TypeQ8_0, q8["output.weight"])
	assert.Equal(t, gguf.TypeQ8_0, q8["blk.0.attn_v.weight"])
	f16 := plan(t, FileTypeF16, hp, 256, 512, false)
	assert.Equal(t, gguf.TypeF16, f16["output.weight"])
	assert.Equal(t, gguf.TypeF32, f16["blk.0.attn_norm.weight"])
}

func TestParseFileType(t *testing.T) {
	for name, want := range map[string]FileType{
		"q4_k": FileTypeQ4_K_M, "Q4_K_M": FileTypeQ4_K_M, "q4_k_s": FileTypeQ4_K_S, "nf4": FileTypeIQ4_NL,
		"iq4_nl": FileTypeIQ4_NL, "q8_0": FileTypeQ8_0, "q4_0": FileTypeQ4_0, "f16": FileTypeF16, "BF16": FileTypeBF16,
	} {
		got, err := ParseFileType(name)
		require.NoError(t, err, name)
		assert.Equal(t, want, got, name)
	}
	_, err := ParseFileType("q3_k")
	assert.ErrorContains(t, err, "known: ")
	for _, name := range UserTypes {
		_, err := ParseFileType(name)
		assert.NoError(t, err, name)
	}
	assert.Equal(t, "Q4_K_M", FileTypeQ4_K_M.String())
	typ, ok := FileTypeQ4_K_M.DefaultType()
	assert.True(t, ok)
	assert.Equal(t, gguf.TypeQ4_K, typ)
}
