//go:build cgo

package bindings

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loraTargets are the stories260K weights the test adapter modifies.
var loraTargets = []string{"blk.0.attn_q.weight", "blk.2.ffn_down.weight", "output.weight"}

// writeLoRA writes a rank-r LoRA adapter for m's loraTargets with seeded random A and B.
// Its metadata is what llama_adapter_lora_init reads: general.type "adapter",
// adapter.type "lora", adapter.lora.alpha, general.architecture; tensors
// "<base>.lora_a" with ne = [n_in, r] and "<base>.lora_b" with ne = [r, n_out].
func writeLoRA(t testing.TB, m *Model, path string, r int64, alpha float32, seed uint64, extra ...ggufKV) {
	t.Helper()
	writeLoRARanks(t, m, path, []int64{r, r, r}, alpha, seed, extra...)
}

// writeLoRARanks is writeLoRA with a rank for each of loraTargets (PEFT's rank_pattern).
func writeLoRARanks(t testing.TB, m *Model, path string, ranks []int64, alpha float32, seed uint64, extra ...ggufKV) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	fill := func(n int64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.Float64()-0.5) * 0.5
		}
		return v
	}
	var tensors []ggufF32
	for k, name := range loraTargets {
		r := ranks[k]
		ne, ok := m.shapes[name]
		require.True(t, ok, "stories260K has no tensor %s", name)
		nIn, nOut := ne[0], ne[1]
		tensors = append(tensors,
			ggufF32{name: name + ".lora_a", ne: []int64{nIn, r}, data: fill(nIn * r)},
			ggufF32{name: name + ".lora_b", ne: []int64{r, nOut}, data: fill(r * nOut)})
	}
	kvs := append([]ggufKV{
		{"general.architecture", m.Arch()},
		{"general.type", "adapter"},
		{"adapter.type", "lora"},
		{"adapter.lora.alpha", alpha},
	}, extra...)
	writeGGUF(t, path, kvs, tensors)
}

func TestLoRAAdapters(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, ContextOptions{NCtx: 256})
	dir := t.TempDir()
	path := filepath.Join(dir, "lora.gguf")
	const rank = 4
	writeLoRA(t, m, path, rank, rank, 1, ggufKV{"general.name", "test-lora"})

	prompt, err := m.Tokenize("Once upon a time, there was a little", true, false)
	require.NoError(t, err)
	logits := func() []float32 {
		t.Helper()
		require.NoError(t, c.ClearMemory())
		return decodeSeqs(t, c, seqTokens{seq: 0, tokens: prompt})[0]
	}
	base := logits()

	a1, err := LoadAdapter(m, path)
	require.NoError(t, err)
	a2, err := LoadAdapter(m, path) // the same weights as a second, distinct adapter
	require.NoError(t, err)
	assert.Equal(t, float32(rank), a1.Alpha())
	assert.Equal(t, rank, a1.Rank())
	assert.Equal(t, "lora", a1.Meta("adapter.type"))
	assert.Equal(t, "test-lora", a1.Metadata()["general.name"])
	assert.Equal(t, path, a1.Path())

	// Scale 0 leaves the model as it is.
	require.NoError(t, c.SetAdapters([]AdapterScale{{a1, 0}}))
	assert.Equal(t, base, logits(), "scale 0 must give the base logits exactly")

	require.NoError(t, c.SetAdapters([]AdapterScale{{a1, 1}}))
	one := logits()
	assert.Greater(t, maxAbsDiff(base, one), 1e-3, "the adapter changes the logits")
	assert.Equal(t, []AdapterScale{{a1, 1}}, c.Adapters())

	require.NoError(t, c.ClearAdapters())
	assert.Equal(t, base, logits(), "clearing restores the base logits exactly")
	assert.Empty(t, c.Adapters())

	// Two identical adapters at 0.5 each equal one at 1.0: the updates add.
	require.NoError(t, c.SetAdapters([]AdapterScale{{a1, 0.5}, {a2, 0.5}}))
	assert.LessOrEqual(t, maxAbsDiff(one, logits()), 1e-4)

	// Removing one of them halves the update, which is neither base nor full.
	require.NoError(t, c.RemoveAdapter(a2))
	half := logits()
	assert.Equal(t, []AdapterScale{{a1, 0.5}}, c.Adapters())
	assert.Greater(t, maxAbsDiff(half, one), 1e-4)
	assert.Greater(t, maxAbsDiff(half, base), 1e-4)

	// Closing an adapter that is in use detaches it first.
	require.NoError(t, c.SetAdapters([]AdapterScale{{a1, 1}, {a2, 1}}))
	require.NoError(t, a2.Close())
	assert.Equal(t, []AdapterScale{{a1, 1}}, c.Adapters())
	assert.LessOrEqual(t, maxAbsDiff(one, logits()), 1e-4)
	assert.ErrorIs(t, c.SetAdapters([]AdapterScale{{a2, 1}}), ErrClosed)
	require.NoError(t, a2.Close(), "Close is idempotent")

	assert.Error(t, c.SetAdapters([]AdapterScale{{a1, 1}, {a1, 1}}), "listed twice")
	assert.Error(t, c.SetAdapters([]AdapterScale{{nil, 1}}))

	// An adapter made for another model instance is refused.
	other := loadStories(t)
	a3, err := LoadAdapter(other, path)
	require.NoError(t, err)
	assert.ErrorContains(t, c.SetAdapters([]AdapterScale{{a3, 1}}), "loaded for model")

	// Closing the model closes its adapters and contexts.
	require.NoError(t, other.Close())
	assert.True(t, a3.closing())
}

// TestLoadAdapterRejectsBadFiles checks adapter files in Go before llama.cpp sees them,
// including metadata of the wrong type, which llama.cpp's getters would abort on.
func TestLoadAdapterRejectsBadFiles(t *testing.T) {
	m := loadStories(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.gguf")
	writeLoRA(t, m, good, 2, 2, 3)
	a, err := LoadAdapter(m, good)
	require.NoError(t, err)
	require.NoError(t, a.Close())

	goodBytes, err := os.ReadFile(good)
	require.NoError(t, err)
	h, err := readGGUFHeader(good)
	require.NoError(t, err)
	for _, n := range []int64{0, 4, 20, 200, h.dataStart - 1, h.dataStart + 10, int64(len(goodBytes)) - 1} {
		p := filepath.Join(dir, fmt.Sprintf("trunc-%d.gguf", n))
		require.NoError(t, os.WriteFile(p, goodBytes[:n], 0o644))
		_, err := LoadAdapter(m, p)
		assert.ErrorIs(t, err, ErrInvalidGGUF, "truncated at %d", n)
		assert.ErrorContains(t, err, p)
	}

	rank := int64(2)
	q := m.shapes["blk.0.attn_q.weight"]
	pairA := ggufF32{name: "blk.0.attn_q.weight.lora_a", ne: []int64{q[0], rank}, data: make([]float32, q[0]*rank)}
	pairB := ggufF32{name: "blk.0.attn_q.weight.lora_b", ne: []int64{rank, q[1]}, data: make([]float32, rank*q[1])}
	meta := func(overrides ...ggufKV) []ggufKV {
		kvs := []ggufKV{{"general.architecture", "llama"}, {"general.type", "adapter"}, {"adapter.type", "lora"}, {"adapter.lora.alpha", float32(2)}}
		for _, o := range overrides {
			for i := range kvs {
				if kvs[i].key == o.key {
					kvs[i] = o
				}
			}
		}
		return kvs
	}
	wrongShape := pairB
	wrongShape.ne = []int64{rank, q[1] + 1}
	wrongShape.data = make([]float32, rank*(q[1]+1))
	wrongRank := pairB
	wrongRank.ne = []int64{rank + 1, q[1]}
	wrongRank.data = make([]float32, (rank+1)*q[1])
	unknown := pairA
	unknown.name = "blk.9.attn_q.weight.lora_a"
	unknownB := pairB
	unknownB.name = "blk.9.attn_q.weight.lora_b"
	oddName := pairA
	oddName.name = "blk.0.attn_q.weight.delta"

	for _, tc := range []struct {
		name    string
		kvs     []ggufKV
		tensors []ggufF32
		want    string
	}{
		{"general.type not a string", meta(ggufKV{"general.type", uint32(7)}), []ggufF32{pairA, pairB}, "want string"},
		{"alpha not f32", meta(ggufKV{"adapter.lora.alpha", uint32(2)}), []ggufF32{pairA, pairB}, "want float32"},
		{"not an adapter", meta(ggufKV{"general.type", "model"}), []ggufF32{pairA, pairB}, "general.type"},
		{"not lora", meta(ggufKV{"adapter.type", "control_vector"}), []ggufF32{pairA, pairB}, "adapter.type"},
		{"other architecture", meta(ggufKV{"general.architecture", "gpt2"}), []ggufF32{pairA, pairB}, "architecture"},
		{"half a pair", meta(), []ggufF32{pairA}, "lacks"},
		{"wrong shape", meta(), []ggufF32{pairA, wrongShape}, "do not fit"},
		{"ranks differ", meta(), []ggufF32{pairA, wrongRank}, "rank"},
		{"unknown base tensor", meta(), []ggufF32{unknown, unknownB}, "not in the base model"},
		{"odd tensor name", meta(), []ggufF32{pairA, pairB, oddName}, "neither"},
		{"no tensors", meta(), nil, "no lora_a/lora_b"},
	} {
		p := filepath.Join(dir, "bad.gguf")
		writeGGUF(t, p, tc.kvs, tc.tensors)
		_, err := LoadAdapter(m, p)
		assert.ErrorContains(t, err, tc.want, tc.name)
		assert.ErrorContains(t, err, p, tc.name)
	}

	// A model is not an adapter.
	_, err = LoadAdapter(m, storiesPath)
	assert.ErrorContains(t, err, "general.type")
	_, err = LoadAdapter(m, filepath.Join(dir, "missing.gguf"))
	assert.ErrorContains(t, err, "missing.gguf")
}
