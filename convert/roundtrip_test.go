package convert_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/convert"
	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/llamaref"
	"github.com/ecotune/ecotune/internal/testenv"
)

// roundTripCase is a factory model of one architecture with one vocabulary.
type roundTripCase struct {
	name  string
	vocab string // llama.cpp's models/ggml-vocab-<vocab>.gguf
	spec  factory.Spec
}

var roundTripCases = []roundTripCase{
	{"llama-spm", "llama-spm", factory.Spec{Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96}},
	{"llama-bpe-f16-tied", "llama-bpe", factory.Spec{Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96, Type: gguf.TypeF16, TiedEmbeddings: true}},
	{"qwen2", "qwen2", factory.Spec{Arch: "qwen2", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96, TiedEmbeddings: true}},
	{"phi2", "gpt-2", factory.Spec{Arch: "phi2", Embd: 64, Layers: 2, Heads: 4, FF: 128}},
	{"phi3", "phi-3", factory.Spec{Arch: "phi3", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96}},
	{"gemma2", "llama-spm", factory.Spec{Arch: "gemma2", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96, Context: 8}},
}

// writeFactoryModel writes the case's model with norms and biases random too
// (factory's 1 and 0 would hide a bias or norm put in the wrong place). Norms
// are 1+N(0, 0.1²), inside [0.5, 2], where gemma2's export (w-1) and
// conversion (+1) are exact in float32.
func writeFactoryModel(t *testing.T, rc roundTripCase) string {
	t.Helper()
	spec := rc.spec
	spec.VocabFile = testenv.Vocab(t, rc.vocab)
	spec.Seed = 11
	spec.Std = 0.1
	b, err := factory.Build(spec)
	require.NoError(t, err)
	for i := range b.Tensors {
		tt := &b.Tensors[i]
		if len(tt.Dims) != 1 {
			continue
		}
		n := int(tt.Dims[0])
		r := rand.New(rand.NewPCG(3, uint64(i)))
		x := make([]float32, n)
		for j := range x {
			x[j] = float32(0.1 * r.NormFloat64())
			if strings.Contains(tt.Name, "norm.weight") {
				x[j] = float32(max(0.6, min(1.5, 1+0.1*r.NormFloat64())))
			}
		}
		tt.Data = gguf.DataBytes(f32Bytes(x))
	}
	if spec.Arch == "gemma2" {
		// As a real Gemma GGUF has it (and Convert writes it): no leading space.
		b.Meta.Set("tokenizer.ggml.add_space_prefix", gguf.ValueOf(false))
	}
	path := filepath.Join(t.TempDir(), rc.name+".gguf")
	require.NoError(t, b.WriteFile(path))
	return path
}

func f32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// TestExportHFRoundTrip: a factory model of each architecture, exported with
// ExportHF and converted back with Convert, has the same tensors byte for
// byte (names, shapes, types, data), the same tokenizer and hyper-parameters,
// and libllama computes the same logits from both files.
func TestExportHFRoundTrip(t *testing.T) {
	for _, rc := range roundTripCases {
		t.Run(rc.name, func(t *testing.T) {
			orig := writeFactoryModel(t, rc)
			dir := filepath.Join(t.TempDir(), "hf")
			esum, err := convert.ExportHF(context.Background(), convert.ExportOptions{Model: orig, Dir: dir, ShardBytes: 1 << 20})
			require.NoError(t, err)
			t.Logf("exported %d tensors into %v", esum.Tensors, esum.Files)
			back := filepath.Join(t.TempDir(), "back.gguf")
			sum, err := convert.Convert(context.Background(), convert.Options{Dir: dir, Out: back})
			require.NoError(t, err)
			t.Logf("converted: %s → %s, %d tensors, tokenizer %s/%s (%s)", sum.Class, sum.Arch, sum.Tensors, sum.Tokenizer.Model, sum.Tokenizer.Pre, sum.Tokenizer.PreHow)

			a, err := gguf.Open(orig)
			require.NoError(t, err)
			defer a.Close()
			b, err := gguf.Open(back)
			require.NoError(t, err)
			defer b.Close()
			require.Len(t, b.Tensors, len(a.Tensors))
			for _, ta := range a.Tensors {
				tb, ok := b.Tensor(ta.Name)
				require.True(t, ok, ta.Name)
				require.Equal(t, ta.Dims, tb.Dims, ta.Name)
				require.Equal(t, ta.Type, tb.Type, ta.Name)
				da, _ := a.Data(ta.Name)
				db, _ := b.Data(ta.Name)
				require.True(t, bytes.Equal(da, db), "%s: data differs", ta.Name)
			}
			compareMeta(t, a.Meta, b.Meta)

			la, lb := openLibllama(t, orig), openLibllama(t, back)
			tokens, err := la.m.Tokenize("Rivers carry sediment from the mountains to the sea.", true, false)
			require.NoError(t, err)
			tokensB, err := lb.m.Tokenize("Rivers carry sediment from the mountains to the sea.", true, false)
			require.NoError(t, err)
			require.Equal(t, tokens, tokensB, "the converted tokenizer tokenizes the same")
			want, got := la.logits(t, tokens), lb.logits(t, tokens)
			d, rng := llamaref.MaxAbsDiff(got, want)
			t.Logf("%d tokens: max |converted - original| logits = %.2e of the range %.2f", len(tokens), d/rng, rng)
			// The same bytes under the same keys: libllama computes the same numbers.
			assert.LessOrEqual(t, d, 1e-5*rng)
		})
	}
}

// compareMeta checks that every hyper-parameter and tokenizer key of the
// original is in the converted file with the same value, except the few the
// converter leaves to llama.cpp's defaults when they equal them.
func compareMeta(t *testing.T, a, b *gguf.Metadata) {
	t.Helper()
	arch, _ := a.String("general.architecture")
	skip := map[string]bool{
		"general.name": true, "general.file_type": true, "general.type": true,
		// Written by factory for every architecture; llama.cpp's converter writes them
		// only for llama, and llama.cpp's default (head_dim, the token count) is the same.
		arch + ".rope.dimension_count": arch == "qwen2" || arch == "gemma2",
		arch + ".vocab_size":           arch != "llama",
		// factory writes the defaults explicitly.
		arch + ".rope.freq_base": arch == "phi3" || arch == "phi2" || arch == "gemma2",
	}
	for k, va := range a.All() {
		if skip[k] {
			continue
		}
		vb, ok := b.Get(k)
		if !assert.True(t, ok, "key %s is missing from the converted file", k) {
			continue
		}
		assert.Equal(t, va.String(), vb.String(), "key %s", k)
		if va.Len() > 0 {
			assert.Equal(t, va.Interface(), vb.Interface(), "key %s", k)
		}
	}
}
