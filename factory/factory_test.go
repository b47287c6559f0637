package factory_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/quant"
)

// shape is the resolved size of a model: what the expectations below are
// computed from, by hand, independently of the factory's tables.
type shape struct {
	E, L, H, Hkv, D, F, V int64
	tied                  bool
}

// wantTensors is the number of tensors llama.cpp's loader expects for arch
// (src/llama-model.cpp, load_tensors): those before the blocks, per block, after.
func wantTensors(arch string, s shape) int64 {
	out := map[bool]int64{false: 2, true: 1} // output_norm, and output unless tied
	switch arch {
	case "llama":
		return 1 + 9*s.L + out[s.tied]
	case "qwen2":
		return 1 + 12*s.L + out[s.tied]
	case "phi2":
		return 1 + 14*s.L + 4
	case "phi3":
		return 1 + 6*s.L + out[s.tied]
	case "gemma2":
		return 1 + 11*s.L + 1
	}
	panic("no expectation for " + arch)
}

// wantParams counts the parameters of arch by its published layout.
func wantParams(arch string, s shape) int64 {
	E, L, F, V := s.E, s.L, s.F, s.V
	q, kv := s.H*s.D, s.Hkv*s.D
	attn := E*q + 2*E*kv + q*E // q, k, v, output projections
	var outMat int64
	if !s.tied {
		outMat = V * E
	}
	switch arch {
	case "llama":
		return V*E + L*(E+attn+E+3*E*F) + E + outMat
	case "qwen2":
		return V*E + L*(E+attn+q+2*kv+E+3*E*F) + E + outMat
	case "phi2":
		// LayerNorm weight+bias, biased q/k/v/output, biased up/down, biased output.
		return V*E + L*(2*E+attn+q+2*kv+E+E*F+F+F*E+E) + 2*E + V*E + V
	case "phi3":
		// Fused qkv and fused gate+up (2·F outputs).
		return V*E + L*(E+attn+E+2*E*F+F*E) + E + outMat
	case "gemma2":
		// Four norms per block; the output reuses token_embd.
		return V*E + L*(4*E+attn+3*E*F) + E
	}
	panic("no expectation for " + arch)
}

// tokenCount is the number of tokens in a vocabulary GGUF.
func tokenCount(t *testing.T, path string) int64 {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	toks, err := f.Meta.Strings("tokenizer.ggml.tokens")
	require.NoError(t, err)
	return int64(len(toks))
}

// TestArchitecturesRunInLlamaCpp writes a model of each architecture, checks
// its header against hand-computed shapes, loads it in libllama and compares
// its hyper-parameters and parameter count, then generates 8 greedy tokens
// through the bindings and through llama-completion: the texts must agree.
func TestArchitecturesRunInLlamaCpp(t *testing.T) {
	cases := []struct {
		name  string
		spec  factory.Spec
		vocab string
		rot   int64 // expected n_rot
	}{
		{"llama gqa", factory.Spec{Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 128}, "llama-spm", 16},
		{"llama f16 head_dim 32 mqa", factory.Spec{Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 1, HeadDim: 32, FF: 128, Type: gguf.TypeF16}, "llama-spm", 32},
		{"llama tied", factory.Spec{Arch: "llama", Embd: 64, Layers: 1, Heads: 2, FF: 96, TiedEmbeddings: true}, "llama-bpe", 32},
		{"qwen2 gqa tied", factory.Spec{Arch: "qwen2", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 128, TiedEmbeddings: true}, "qwen2", 16},
		{"phi2", factory.Spec{Arch: "phi2", Embd: 64, Layers: 2, Heads: 4, FF: 256}, "gpt-2", 8},
		{"phi3 gqa f16", factory.Spec{Arch: "phi3", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 128, Type: gguf.TypeF16}, "phi-3", 16},
		{"gemma2 head_dim 32", factory.Spec{Arch: "gemma2", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, HeadDim: 32, FF: 128}, "llama-spm", 32},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.spec.Arch] = true
		t.Run(c.name, func(t *testing.T) {
			spec := c.spec
			spec.VocabFile = vocab(t, c.vocab)
			spec.Seed = 11
			path := filepath.Join(t.TempDir(), "model.gguf")
			require.NoError(t, factory.Init(spec, path))

			s := shape{E: int64(spec.Embd), L: int64(spec.Layers), H: int64(spec.Heads), Hkv: int64(spec.HeadsKV),
				D: int64(spec.HeadDim), F: int64(spec.FF), V: tokenCount(t, spec.VocabFile), tied: spec.TiedEmbeddings}
			if s.Hkv == 0 {
				s.Hkv = s.H
			}
			if s.D == 0 {
				s.D = s.E / s.H
			}
			weightType := gguf.TypeF32
			if spec.Type == gguf.TypeF16 {
				weightType = gguf.TypeF16
			}

			// The header, read back by our reader.
			f, err := gguf.Open(path)
			require.NoError(t, err)
			defer f.Close()
			arch := spec.Arch
			u := func(key string) int64 {
				v, err := f.Meta.Int(key)
				require.NoError(t, err, key)
				return v
			}
			a, err := f.Meta.String("general.architecture")
			require.NoError(t, err)
			assert.Equal(t, arch, a)
			assert.Equal(t, s.L, u(arch+".block_count"))
			assert.Equal(t, s.E, u(arch+".embedding_length"))
			assert.Equal(t, s.F, u(arch+".feed_forward_length"))
			assert.Equal(t, s.H, u(arch+".attention.head_count"))
			assert.Equal(t, s.Hkv, u(arch+".attention.head_count_kv"))
			assert.Equal(t, c.rot, u(arch+".rope.dimension_count"))
			assert.Equal(t, s.V, u(arch+".vocab_size"))
			assert.Equal(t, map[gguf.Type]int64{gguf.TypeF32: 0, gguf.TypeF16: 1}[weightType], u("general.file_type"))
			if s.D != s.E/s.H {
				assert.Equal(t, s.D, u(arch+".attention.key_length"))
				assert.Equal(t, s.D, u(arch+".attention.value_length"))
			} else {
				assert.False(t, f.Meta.Has(arch+".attention.key_length"), "key_length only when head_dim is overridden")
			}
			assert.EqualValues(t, wantTensors(arch, s), len(f.Tensors), "tensor count")
			var params int64
			for _, ti := range f.Tensors {
				n, _ := ti.Elements()
				params += n
				want := gguf.TypeF32
				if len(ti.Dims) == 2 {
					want = weightType
				}
				assert.Equal(t, want, ti.Type, ti.Name)
			}
			assert.Equal(t, wantParams(arch, s), params, "parameter count")
			_, hasOutput := f.Tensor("output.weight")
			assert.Equal(t, !s.tied && arch != "gemma2", hasOutput, "output.weight present unless tied")

			// libllama loads it and sees the same model.
			m, err := bindings.LoadModel(path, bindings.ModelOptions{})
			require.NoError(t, err)
			defer m.Close()
			assert.Equal(t, arch, m.Arch())
			assert.EqualValues(t, s.E, m.NEmbd())
			assert.EqualValues(t, s.L, m.NLayer())
			assert.EqualValues(t, s.H, m.NHead())
			assert.EqualValues(t, s.Hkv, m.NHeadKV())
			assert.EqualValues(t, s.V, m.VocabSize())
			assert.EqualValues(t, factory.DefaultContext, m.NCtxTrain())
			assert.EqualValues(t, params, m.NParams(), "libllama's parameter count")

			// Greedy generation through the bindings and through llama.cpp's tool.
			const prompt = "Once upon a time"
			ctx, err := bindings.NewContext(m, bindings.ContextOptions{NCtx: 256, Threads: 1, ThreadsBatch: 1})
			require.NoError(t, err)
			defer ctx.Close()
			var got strings.Builder
			n := 0
			for tok, err := range bindings.Generate(context.Background(), ctx, prompt, bindings.GenerateOptions{MaxTokens: 8, Sampler: bindings.SamplerOptions{Seed: 42}}) {
				require.NoError(t, err)
				got.WriteString(tok.Text)
				n++
			}
			assert.Equal(t, 8, n, "8 tokens (random weights make an end-of-generation token unlikely)")
			require.NotEmpty(t, strings.TrimSpace(got.String()), "the bindings generated no text")

			tool := llamaCompletion(t, "-m", path, "-p", prompt, "-n", "8",
				"--temp", "0", "--top-k", "1", "-s", "42", "-c", "256", "--no-warmup",
				"-no-cnv", "--no-display-prompt", "--simple-io", "-t", "1", "-tb", "1")
			assert.NotEmpty(t, strings.TrimSpace(tool), "llama-completion printed no text")
			assert.Equal(t, tool, got.String(), "llama-completion and the bindings generate the same greedy text")
			t.Logf("%s: %d tensors, %d params, generated %q", arch, len(f.Tensors), params, tool)
		})
	}
	for _, a := range factory.Architectures() {
		assert.True(t, covered[a], "architecture %s has no case", a)
	}
}

// floats reads tensor name of f as float64 values (F32 or F16).
func floats(t *testing.T, f *gguf.File, name string) []float64 {
	t.Helper()
	ti, ok := f.Tensor(name)
	require.True(t, ok, name)
	data, err := f.Data(name)
	require.NoError(t, err)
	n, _ := ti.Elements()
	out := make([]float64, n)
	switch ti.Type {
	case gguf.TypeF32:
		for i := range out {
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])))
		}
	case gguf.TypeF16:
		x, err := quant.Dequantize(ggml.TypeF16, data, int(n))
		require.NoError(t, err)
		for i, v := range x {
			out[i] = float64(v)
		}
	default:
		t.Fatalf("%s: unexpected type %s", name, ti.Type)
	}
	return out
}

// TestInitValues checks the values: weights look like N(0, std²) (mean, standard
// deviation and the share within one std), norm weights are 1, biases 0.
func TestInitValues(t *testing.T) {
	for _, typ := range []gguf.Type{gguf.TypeF32, gguf.TypeF16} {
		t.Run(typ.String(), func(t *testing.T) {
			const std = 0.05
			path := filepath.Join(t.TempDir(), "phi2.gguf")
			require.NoError(t, factory.Init(factory.Spec{Arch: "phi2", Embd: 128, Layers: 1, Heads: 4, FF: 256, VocabSize: 2000, Std: std, Type: typ, Seed: 3}, path))
			f, err := gguf.Open(path)
			require.NoError(t, err)
			defer f.Close()

			x := floats(t, f, "token_embd.weight") // 256,000 values
			var sum, sum2 float64
			within := 0
			for _, v := range x {
				sum += v
				sum2 += v * v
				if math.Abs(v) < std {
					within++
				}
			}
			n := float64(len(x))
			mean := sum / n
			sd := math.Sqrt(sum2/n - mean*mean)
			assert.Less(t, math.Abs(mean), 4*std/math.Sqrt(n), "mean")
			assert.InEpsilon(t, std, sd, 0.01, "standard deviation")
			assert.InDelta(t, 0.6827, float64(within)/n, 0.005, "share within one std (normal: 68.27%%)")

			for _, name := range []string{"blk.0.attn_norm.weight", "output_norm.weight"} {
				for _, v := range floats(t, f, name) {
					require.Equal(t, 1.0, v, name)
				}
			}
			for _, name := range []string{"blk.0.attn_norm.bias", "blk.0.attn_q.bias", "blk.0.ffn_down.bias", "output.bias"} {
				for _, v := range floats(t, f, name) {
					require.Equal(t, 0.0, v, name)
				}
			}
		})
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return sha256.Sum256(b)
}

// TestDeterministic: the same spec and seed give the same bytes; another seed
// changes every random tensor; a tensor's values depend only on the seed and
// its name, so a deeper model shares its first block with a shallower one.
func TestDeterministic(t *testing.T) {
	dir := t.TempDir()
	spec := factory.Spec{Arch: "qwen2", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 128, VocabSize: 500, Seed: 5}
	write := func(name string, s factory.Spec) string {
		p := filepath.Join(dir, name)
		require.NoError(t, factory.Init(s, p))
		return p
	}
	a, b := write("a.gguf", spec), write("b.gguf", spec)
	assert.Equal(t, fileSum(t, a), fileSum(t, b), "same seed, same bytes")

	other := spec
	other.Seed = 6
	c := write("c.gguf", other)
	deeper := spec
	deeper.Layers = 3
	d := write("d.gguf", deeper)

	fa, err := gguf.Open(a)
	require.NoError(t, err)
	defer fa.Close()
	fc, err := gguf.Open(c)
	require.NoError(t, err)
	defer fc.Close()
	fd, err := gguf.Open(d)
	require.NoError(t, err)
	defer fd.Close()
	for _, ti := range fa.Tensors {
		x, err := fa.Data(ti.Name)
		require.NoError(t, err)
		y, err := fc.Data(ti.Name)
		require.NoError(t, err)
		z, err := fd.Data(ti.Name)
		require.NoError(t, err)
		assert.Equal(t, x, z, "%s: same in a 3-layer model", ti.Name)
		if len(ti.Dims) == 2 {
			assert.NotEqual(t, x, y, "%s: another seed changes it", ti.Name)
		} else {
			assert.Equal(t, x, y, "%s: norms and biases do not depend on the seed", ti.Name)
		}
	}
	assert.Len(t, fd.Tensors, len(fa.Tensors)+12, "one more block of 12 tensors")
}

func TestBadSpecs(t *testing.T) {
	dir := t.TempDir()
	// A GGUF without a tokenizer: not usable as --vocab.
	noTok := filepath.Join(dir, "notok.gguf")
	require.NoError(t, factory.Init(factory.Spec{Arch: "llama", Embd: 32, Layers: 1, Heads: 2, FF: 32, VocabSize: 10}, noTok))

	good := factory.Spec{Arch: "llama", Embd: 64, Layers: 1, Heads: 4, FF: 64, VocabSize: 100}
	for _, c := range []struct {
		name   string
		change func(s *factory.Spec)
		want   string
	}{
		{"unknown arch", func(s *factory.Spec) { s.Arch = "mamba" }, `unknown architecture "mamba"; known: llama, qwen2, phi2, phi3, gemma2`},
		{"zero width", func(s *factory.Spec) { s.Embd = 0 }, "n_embd, n_layer, n_head and n_ff must be positive (got 0, 1, 4, 64)"},
		{"no layers", func(s *factory.Spec) { s.Layers = 0 }, "must be positive"},
		{"kv heads", func(s *factory.Spec) { s.HeadsKV = 3 }, "n_head 4 is not a multiple of n_head_kv 3"},
		{"width vs heads", func(s *factory.Spec) { s.Embd = 66 }, "n_embd 66 is not a multiple of n_head 4"},
		{"phi2 head_dim", func(s *factory.Spec) { s.Arch = "phi2"; s.HeadDim = 32 }, "phi2 needs head_dim = n_embd/n_head"},
		{"llama partial rope", func(s *factory.Spec) { s.RopeDim = 8 }, "llama rotates whole heads: n_rot must equal head_dim 16"},
		{"odd rope", func(s *factory.Spec) { s.Arch = "phi2"; s.RopeDim = 7 }, "n_rot 7 must be even and within the head dimension 16"},
		{"rope too wide", func(s *factory.Spec) { s.Arch = "phi3"; s.RopeDim = 32 }, "n_rot 32 must be even and within the head dimension 16"},
		{"negative std", func(s *factory.Spec) { s.Std = -1 }, "negative init std -1"},
		{"quantized type", func(s *factory.Spec) { s.Type = gguf.TypeQ4_0 }, "weight type q4_0: want f32 or f16"},
		{"no vocabulary", func(s *factory.Spec) { s.VocabSize = 0 }, "no vocabulary"},
		{"missing vocab file", func(s *factory.Spec) { s.VocabFile = filepath.Join(dir, "none.gguf") }, "none.gguf"},
		{"vocab without tokens", func(s *factory.Spec) { s.VocabFile = noTok }, "notok.gguf has no tokenizer.ggml.tokens"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := good
			c.change(&s)
			if s.VocabFile == "" {
				// Problems found without reading a file are Validate's too.
				assert.ErrorContains(t, s.Validate(), c.want, "Validate")
			} else {
				assert.NoError(t, s.Validate(), "Validate does not open the vocabulary")
			}
			out := filepath.Join(dir, "bad-"+strings.ReplaceAll(c.name, " ", "-")+".gguf")
			err := factory.Init(s, out)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.True(t, strings.HasPrefix(err.Error(), "factory: "), "errors name the package: %v", err)
			_, statErr := os.Stat(out)
			assert.True(t, os.IsNotExist(statErr), "nothing written for a bad spec")
		})
	}

	// The good spec itself works, so the failures above are the changes'.
	require.NoError(t, good.Validate())
	require.NoError(t, factory.Init(good, filepath.Join(dir, "good.gguf")))
	err := factory.Init(good, filepath.Join(dir, "no-such-dir", "m.gguf"))
	assert.ErrorContains(t, err, "no-such-dir")
}

func TestParseDims(t *testing.T) {
	var s factory.Spec
	require.NoError(t, factory.ParseDims(" n_embd=256, n_layer=2,n_head=8,n_head_kv=2,n_ff=768,n_ctx=1024,head_dim=64,n_rot=32,rope_base=500000,", &s))
	assert.Equal(t, factory.Spec{Embd: 256, Layers: 2, Heads: 8, HeadsKV: 2, FF: 768, Context: 1024, HeadDim: 64, RopeDim: 32, RopeBase: 500000}, s)

	for in, want := range map[string]string{
		"n_embd":         `"n_embd" is not key=value`,
		"n_embd=-4":      `n_embd="-4": want a positive integer`,
		"n_layer=two":    `n_layer="two": want a positive integer`,
		"rope_base=0":    `rope_base="0": want a positive number`,
		"n_experts=8":    `unknown key "n_experts" (known: n_embd, n_layer`,
		"n_embd=64,x=1":  `unknown key "x"`,
		"head_dim=1.5":   `head_dim="1.5"`,
		"n_ff=768,n_ff=": `n_ff="": want a positive integer`,
	} {
		err := factory.ParseDims(in, &factory.Spec{})
		assert.ErrorContains(t, err, want, in)
	}
}

func ExampleArchitectures() {
	fmt.Println(factory.Architectures())
	// Output: [llama qwen2 phi2 phi3 gemma2]
}

// TestWeightsFromFile rebuilds a model from another one's tensors with a new
// tokenizer and type: every tensor equals the source's, converted.
func TestWeightsFromFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.gguf")
	spec := factory.Spec{Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 128, VocabSize: 300, TiedEmbeddings: true, Seed: 5}
	require.NoError(t, factory.Init(spec, src))
	out := filepath.Join(dir, "out.gguf")
	spec.Seed, spec.Weights, spec.Type = 99, src, gguf.TypeF16
	require.NoError(t, factory.Init(spec, out))
	a, err := gguf.Open(src)
	require.NoError(t, err)
	defer a.Close()
	b, err := gguf.Open(out)
	require.NoError(t, err)
	defer b.Close()
	require.Len(t, b.Tensors, len(a.Tensors))
	for _, ti := range a.Tensors {
		got, ok := b.Tensor(ti.Name)
		require.True(t, ok, ti.Name)
		da, err := a.Data(ti.Name)
		require.NoError(t, err)
		db, err := b.Data(ti.Name)
		require.NoError(t, err)
		n, _ := ti.Elements()
		want, err := quant.Dequantize(ggml.Type(ti.Type), da, int(n))
		require.NoError(t, err)
		have, err := quant.Dequantize(ggml.Type(got.Type), db, int(n))
		require.NoError(t, err)
		for i := range want {
			require.InDelta(t, want[i], have[i], 1e-3*max(1, math.Abs(float64(want[i]))), "%s[%d]", ti.Name, i)
		}
	}

	spec.Embd = 128
	err = factory.Init(spec, filepath.Join(dir, "bad.gguf"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "has shape")
	assert.NoFileExists(t, filepath.Join(dir, "bad.gguf"))
}
