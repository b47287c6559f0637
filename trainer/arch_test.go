package trainer

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/testenv"
)

// archCase is a small random model of one architecture as factory writes it, with
// two changes: norm weights and biases are random too (factory's 1 and 0 would hide a
// bias added in the wrong place), and fuseQKV rewrites attn_q/k/v into one attn_qkv,
// as llama.cpp's converter writes some Phi-2 checkpoints.
type archCase struct {
	name    string
	spec    factory.Spec
	vocab   string // third_party/llama.cpp/models/ggml-vocab-<vocab>.gguf
	fuseQKV bool
	// splitBiases keeps Q, K and V biases apart beside a fused attn_qkv weight, a
	// layout llama.cpp's loader accepts from older converters.
	splitBiases bool
	meta        map[string]gguf.Value // metadata to override
	weights     ggml.Type             // type of the weight matrices; F32 (the zero value) keeps factory's
	// outputBias adds a random output.bias, which llama.cpp's qwen2 loader takes
	// when present.
	outputBias bool
	// edit changes the file last.
	edit func(b *gguf.Builder)
}

var archCases = []archCase{
	{name: "qwen2", vocab: "llama-spm", outputBias: true,
		spec: factory.Spec{Arch: "qwen2", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96, TiedEmbeddings: true}},
	{name: "qwen2-fused-qkv-split-biases", vocab: "llama-spm", fuseQKV: true, splitBiases: true,
		spec: factory.Spec{Arch: "qwen2", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96}},
	{name: "phi2", vocab: "gpt-2",
		spec: factory.Spec{Arch: "phi2", Embd: 64, Layers: 2, Heads: 4, FF: 128}},
	{name: "phi2-fused-qkv", vocab: "gpt-2", fuseQKV: true,
		spec: factory.Spec{Arch: "phi2", Embd: 64, Layers: 2, Heads: 4, FF: 128}},
	{name: "phi3", vocab: "phi-3",
		spec: factory.Spec{Arch: "phi3", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96}},
	// A training context of 8 makes factory write a sliding window of 8, shorter than
	// the test sequences; soft-caps small enough for tanh to bend the scores and logits.
	{name: "gemma2", vocab: "llama-spm",
		spec: factory.Spec{Arch: "gemma2", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96, Context: 8},
		meta: map[string]gguf.Value{
			"gemma2.attn_logit_softcapping":  gguf.ValueOf(float32(0.5)),
			"gemma2.final_logit_softcapping": gguf.ValueOf(float32(3)),
		}},
	// Llama 3.1's per-pair frequency divisors.
	{name: "llama-rope-freqs", vocab: "llama-spm", edit: addRopeFactors(ropeFreqs, 8, 1, 8),
		spec: factory.Spec{Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96}},
	// Phi-3.5's LongRoPE: short factors within the original context (512 here, the
	// training context), long ones beyond it (8 here, shorter than the test
	// sequences), and cos and sin scaled by the attention factor.
	{name: "phi3-longrope-short", vocab: "phi-3",
		edit: func(b *gguf.Builder) {
			addRopeFactors(ropeFactorsShort, 8, 1, 1.5)(b)
			addRopeFactors(ropeFactorsLong, 8, 2, 8)(b)
		},
		meta: map[string]gguf.Value{"phi3.rope.scaling.attn_factor": gguf.ValueOf(float32(1.19))},
		spec: factory.Spec{Arch: "phi3", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96}},
	{name: "phi3-longrope-long", vocab: "phi-3",
		edit: func(b *gguf.Builder) {
			addRopeFactors(ropeFactorsShort, 8, 1, 1.5)(b)
			addRopeFactors(ropeFactorsLong, 8, 2, 8)(b)
		},
		meta: map[string]gguf.Value{
			"phi3.rope.scaling.attn_factor":             gguf.ValueOf(float32(1.19)),
			"phi3.rope.scaling.original_context_length": gguf.ValueOf(uint32(8)),
		},
		spec: factory.Spec{Arch: "phi3", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96}},
}

// addRopeFactors adds the global tensor name with n factors uniform in [lo, hi).
func addRopeFactors(name string, n int, lo, hi float64) func(b *gguf.Builder) {
	return func(b *gguf.Builder) {
		r := rand.New(rand.NewPCG(uint64(n), uint64(hi)))
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(lo + (hi-lo)*r.Float64())
		}
		b.Tensors = append(b.Tensors, gguf.Tensor{
			TensorInfo: gguf.TensorInfo{Name: name, Dims: []int64{int64(n)}, Type: gguf.TypeF32},
			Data:       gguf.DataBytes(f32Bytes(v)),
		})
	}
}

func archCaseNamed(t testing.TB, name string) archCase {
	t.Helper()
	i := slices.IndexFunc(archCases, func(c archCase) bool { return c.name == name })
	require.GreaterOrEqual(t, i, 0, "no arch case %q", name)
	return archCases[i]
}

func f32Bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

// writeArchModel writes c's model into the test's temporary directory.
func writeArchModel(t testing.TB, c archCase) string {
	t.Helper()
	spec := c.spec
	spec.VocabFile = testenv.Vocab(t, c.vocab)
	spec.Seed, spec.Std = 11, 0.1
	b, err := factory.Build(spec)
	require.NoError(t, err)
	for k, v := range c.meta {
		b.Meta.Set(k, v)
	}
	r := rand.New(rand.NewPCG(12, 13))
	byName := map[string]int{}
	for i, ti := range b.Tensors {
		byName[ti.Name] = i
		if len(ti.Dims) != 1 {
			continue
		}
		v := make([]float32, ti.Dims[0])
		for j := range v {
			v[j] = float32(0.2 * r.NormFloat64())
			if strings.Contains(ti.Name, "norm") {
				v[j]++
			}
		}
		b.Tensors[i].Data = gguf.DataBytes(f32Bytes(v))
	}
	if c.fuseQKV {
		var kept []gguf.Tensor
		for _, ti := range b.Tensors {
			base, kind, ok := strings.Cut(ti.Name, ".attn_q.")
			if c.splitBiases && strings.HasSuffix(ti.Name, ".bias") {
				kept = append(kept, ti)
				continue
			}
			if !ok {
				if strings.Contains(ti.Name, ".attn_k.") || strings.Contains(ti.Name, ".attn_v.") {
					continue
				}
				kept = append(kept, ti)
				continue
			}
			// Q rows, then K, then V: ggml's ne[1] is the outer dimension, so the fused
			// tensor's data is the three tensors' data one after another.
			var data bytes.Buffer
			dims := append([]int64(nil), ti.Dims...)
			for _, p := range []string{".attn_q.", ".attn_k.", ".attn_v."} {
				part := b.Tensors[byName[base+p+kind]]
				require.NoError(t, part.Data(&data))
				if p != ".attn_q." {
					dims[len(dims)-1] += part.Dims[len(dims)-1]
				}
			}
			kept = append(kept, gguf.Tensor{
				TensorInfo: gguf.TensorInfo{Name: base + ".attn_qkv." + kind, Dims: dims, Type: ti.Type},
				Data:       gguf.DataBytes(data.Bytes()),
			})
		}
		b.Tensors = kept
	}
	if c.outputBias {
		te := b.Tensors[byName["token_embd.weight"]]
		v := make([]float32, te.Dims[1])
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		b.Tensors = append(b.Tensors, gguf.Tensor{
			TensorInfo: gguf.TensorInfo{Name: "output.bias", Dims: []int64{te.Dims[1]}, Type: gguf.TypeF32},
			Data:       gguf.DataBytes(f32Bytes(v)),
		})
	}
	if c.weights != ggml.TypeF32 {
		for i, ti := range b.Tensors {
			if len(ti.Dims) != 2 {
				continue
			}
			var raw bytes.Buffer
			require.NoError(t, ti.Data(&raw))
			v, err := ggml.Dequantize(ggml.TypeF32, raw.Bytes(), int(ti.Dims[0]*ti.Dims[1]))
			require.NoError(t, err)
			q, err := ggml.Quantize(c.weights, v, int(ti.Dims[0]))
			require.NoError(t, err)
			b.Tensors[i].Type, b.Tensors[i].Data = gguf.Type(c.weights), gguf.DataBytes(q)
		}
	}
	if c.edit != nil {
		c.edit(b)
	}
	path := filepath.Join(t.TempDir(), c.name+".gguf")
	require.NoError(t, b.WriteFile(path))
	return path
}

// loadArchModel loads path with F32 products throughout: the tests bound its gradients
// by F32's rounding (TestComputeType covers the narrower compute types).
func loadArchModel(t testing.TB, path string) *Model {
	t.Helper()
	m, err := loadTestModel(path, ModelOptions{Threads: 1, ComputeType: "f32"})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// compareWithLibllama runs seqs right-padded in one batch through our forward pass
// (adapted by lora unless nil; K and V rounded to F16, as libllama's default cache keeps
// them) and each alone through ref, and checks every position's logits to within tol ×
// their range. It returns the worst max|diff|/range and the largest logit range.
func compareWithLibllama(t *testing.T, m *Model, ref *llamaRef, seqs [][]int32, lora *LoRA, tol float64) (worst, rng float64) {
	t.Helper()
	m.kvType = ggml.TypeF16 // as libllama's default KV cache
	defer func() { m.kvType = ggml.TypeF32 }()
	return compareLogits(t, m, ref, seqs, lora, tol)
}

// compareLogits is compareWithLibllama with m's keys and values as they are. On a GPU
// it runs each sequence alone, as libllama does: ggml's CUDA backend picks its matrix
// kernel by the number of tokens, and some round F32 inputs to TF32 (see
// testenv.StrictF32), so a batch and a single sequence would differ by that rounding.
func compareLogits(t *testing.T, m *Model, ref *llamaRef, seqs [][]int32, lora *LoRA, tol float64) (worst, rng float64) {
	t.Helper()
	if gpuTests && len(seqs) > 1 {
		for _, s := range seqs {
			w, r := compareLogits(t, m, ref, [][]int32{s}, lora, tol)
			worst, rng = max(worst, w), max(rng, r)
		}
		return worst, rng
	}
	T := 0
	for _, s := range seqs {
		T = max(T, len(s))
	}
	tokens := make([]int32, len(seqs)*T)
	for i, s := range seqs {
		copy(tokens[i*T:], s)
	}
	got, err := m.Logits(tokens, len(seqs), T, lora)
	require.NoError(t, err)
	V := m.HP.Vocab
	for s, seq := range seqs {
		want := ref.logits(t, seq)
		for i := range seq {
			d, r := maxAbsDiff(got[(s*T+i)*V:(s*T+i+1)*V], want[i])
			assert.LessOrEqualf(t, d, tol*r, "sequence %d position %d: max diff %g, range %g", s, i, d, r)
			worst, rng = max(worst, d/r), max(rng, r)
		}
	}
	return worst, rng
}

// compareFusedWithLibllama is compareWithLibllama for our forward pass with fused ops
// and F32 keys and values, against ref, which must keep its cache in F32.
func compareFusedWithLibllama(t *testing.T, m *Model, ref *llamaRef, seqs [][]int32, tol float64) (worst float64) {
	t.Helper()
	if !m.fusedOps() {
		return 0 // on a GPU: the generic ops are all there is
	}
	worst, _ = compareLogits(t, m, ref, seqs, nil, tol)
	return worst
}

// TestArchForwardMatchesLibllama compares our logits with libllama's on each
// architecture's factory model, first without an adapter, then with a LoRA on every
// target module, written as an adapter file and loaded into libllama.
//
// libllama's CPU GELU reads an f16 table (input and output rounded to f16, a
// relative error up to 2⁻¹¹), so these comparisons use ggml's gelu op as it does;
// then the graph we train, with the exact differentiable GELU, is compared too, with a
// tolerance that allows for the table.
func TestArchForwardMatchesLibllama(t *testing.T) {
	for _, ac := range archCases {
		t.Run(ac.name, func(t *testing.T) {
			path := writeArchModel(t, ac)
			m := loadArchModel(t, path)
			ref := newLlamaRef(t, path)
			seqs := [][]int32{
				ref.tokenize(t, "Rivers carry sediment from the mountains to the sea, building deltas over centuries."),
				ref.tokenize(t, "Wetlands store carbon"),
			}
			m.geluOp = true
			worst, rng := compareWithLibllama(t, m, ref, seqs, nil, 1e-4)
			t.Logf("%s base: max |ours - libllama| / logit range = %.2e (range up to %.2f)", ac.name, worst, rng)
			// The fused CPU ops (the default; F32 keys and values) against libllama with an
			// F32 cache.
			worst = compareFusedWithLibllama(t, m, newLlamaRefKV(t, path, true), seqs, 1e-4)
			t.Logf("%s base, fused ops: max |ours - libllama with an F32 cache| / logit range = %.2e", ac.name, worst)

			l := trainedLoRA(t, m, LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"all"}})
			adapter := filepath.Join(t.TempDir(), "adapter.gguf")
			require.NoError(t, l.WriteAdapter(adapter))
			ad, err := bindings.LoadAdapter(ref.m, adapter)
			require.NoError(t, err)
			defer ad.Close()
			require.NoError(t, ref.c.SetAdapters([]bindings.AdapterScale{{Adapter: ad, Scale: 1}}))
			worst, _ = compareWithLibllama(t, m, ref, seqs, l, 1e-4)

			// The adapter must move the logits for the comparison to mean anything.
			base, err := m.Logits(seqs[0], 1, len(seqs[0]), nil)
			require.NoError(t, err)
			adapted, err := m.Logits(seqs[0], 1, len(seqs[0]), l)
			require.NoError(t, err)
			moved, _ := maxAbsDiff(base, adapted)
			require.Greater(t, moved, 0.05*rng, "the adapter barely changes the logits")
			t.Logf("%s with LoRA on %v: max |ours - libllama| / range = %.2e (the adapter moves logits by up to %.2f)",
				ac.name, l.Config.Targets, worst, moved)

			m.geluOp = false
			worst, _ = compareWithLibllama(t, m, ref, seqs, l, 5e-4)
			t.Logf("%s with LoRA, training graph (exact GELU): max |ours - libllama| / range = %.2e", ac.name, worst)
		})
	}
}

// TestArchLoRAGradients checks ∇A and ∇B of the masked loss of every adapter pair in
// block 0 (whose gradients cross every later block, norms and activations included)
// against central differences of a float64 loss computed from the forward logits.
func TestArchLoRAGradients(t *testing.T) {
	for _, ac := range archCases {
		t.Run(ac.name, func(t *testing.T) {
			m := loadArchModel(t, writeArchModel(t, ac))
			l, err := NewLoRA(m, LoRAConfig{Rank: 2, Alpha: 4, Targets: []string{"all"}, Seed: 7})
			require.NoError(t, err)
			defer l.Close()
			randomizeB(t, l, 8, 0.1)
			b := testBatch(t)
			// Gradient checkpointing recomputes the same activations with the same
			// kernels, so its gradients are the same bit for bit. (It runs first: the
			// scheduler's buffer only grows.)
			// Keeping the feed-forward products reads what recomputing them would give.
			ckLoss, ckGrads, ckBuf := lossAndGradsWith(t, m, l, b, checkpointFull)
			keepLoss, keepGrads, _ := lossAndGradsWith(t, m, l, b, checkpointKeepFFN)
			allLoss, allGrads, _ := lossAndGradsWith(t, m, l, b, checkpointKeepAll)
			loss, grads, plainBuf := lossAndGradsWith(t, m, l, b, checkpointNone)
			require.Equal(t, loss, ckLoss)
			require.Equal(t, loss, keepLoss)
			require.Equal(t, loss, allLoss, "BF16 copies for the backward pass leave the forward pass alone")
			rounded := false
			for name, g := range grads {
				require.Truef(t, slices.Equal(g, ckGrads[name]), "%s: gradient differs with checkpointing", name)
				require.Truef(t, slices.Equal(g, keepGrads[name]), "%s: gradient differs with checkpointing that keeps the feed-forward products", name)
				rounded = assertBF16Kept(t, name, allGrads[name], g) || rounded
			}
			require.True(t, rounded, "the BF16 copies of the kept products changed no gradient: they are not read")
			t.Logf("%s: compute buffer %d KiB, %d KiB with gradient checkpointing", ac.name, plainBuf>>10, ckBuf>>10)
			compareGenericOps(t, m, l, b, loss, grads)
			var names []string
			for _, name := range l.Names() {
				if strings.HasPrefix(name, "blk.0.") {
					names = append(names, name)
				}
			}
			worst, checked := checkGradsByFiniteDifferences(t, m, l, b, grads, names, 2)
			require.Positive(t, checked)
			t.Logf("%s: worst relative error of %d LoRA gradients vs central differences: %.2e", ac.name, checked, worst)
		})
	}
}

// compareGenericOps checks the loss, gradients and logits that m computes with fused
// attention and adapters (the CPU's default: ggml.CausalAttention, ggml.LoRA) against
// those of ggml's generic ops, which the libllama comparisons use.
func compareGenericOps(t *testing.T, m *Model, l *LoRA, b *Batch, loss float64, grads map[string][]float32) {
	t.Helper()
	if !m.fusedOps() {
		return // on a GPU: the generic ops are all there is
	}
	fused, err := m.Logits(b.Tokens, b.B, b.T, l)
	require.NoError(t, err)
	m.genericOps = true
	defer func() { m.genericOps = false }()
	genLoss, genGrads, _ := lossAndGradsWith(t, m, l, b, checkpointNone)
	generic, err := m.Logits(b.Tokens, b.B, b.T, l)
	require.NoError(t, err)
	assert.InDelta(t, genLoss, loss, 1e-6*math.Abs(genLoss), "loss")
	worst := 0.0
	for name, g := range genGrads {
		d, r := maxAbsDiff(grads[name], g)
		assert.LessOrEqualf(t, d, 1e-4*r, "%s: max diff %g, range %g", name, d, r)
		if r > 0 {
			worst = max(worst, d/r)
		}
	}
	d, r := maxAbsDiff(fused, generic)
	assert.LessOrEqual(t, d, 1e-5*r, "logits")
	t.Logf("fused vs generic ops: logits %.1e, gradients %.1e of their range", d/r, worst)
}

// TestArchLoRATargets checks how module names resolve on each architecture, fused
// weights included, and the adapter shapes that follow.
func TestArchLoRATargets(t *testing.T) {
	models := map[string]*Model{}
	for _, ac := range archCases {
		models[ac.name] = loadArchModel(t, writeArchModel(t, ac))
	}
	for _, tc := range []struct {
		model   string
		targets []string
		want    []string
		err     string
	}{
		{model: "qwen2", targets: []string{"all"}, want: []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}},
		{model: "qwen2", targets: []string{"q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}, want: []string{"attn_q", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}},
		{model: "qwen2", targets: []string{"qkv_proj"}, err: "no attn_qkv weight"},
		{model: "qwen2", targets: []string{"gate_up_proj"}, err: "unknown LoRA target"},
		{model: "qwen2-fused-qkv-split-biases", targets: []string{"q_proj", "o_proj"}, want: []string{"attn_qkv", "attn_output"}},
		{model: "phi2", targets: []string{"q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"}, want: []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down"}},
		{model: "phi2", targets: []string{"all"}, want: []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down"}},
		{model: "phi2", targets: []string{"gate_proj"}, err: "unknown LoRA target"},
		{model: "phi2-fused-qkv", targets: []string{"all"}, want: []string{"attn_qkv", "attn_output", "ffn_up", "ffn_down"}},
		{model: "phi2-fused-qkv", targets: DefaultTargets, want: []string{"attn_qkv", "attn_output"}},
		{model: "phi2-fused-qkv", targets: []string{"Wqkv", "out_proj", "fc1"}, want: []string{"attn_qkv", "attn_output", "ffn_up"}},
		{model: "phi3", targets: []string{"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}, want: []string{"attn_qkv", "attn_output", "ffn_up", "ffn_down"}},
		{model: "phi3", targets: DefaultTargets, want: []string{"attn_qkv", "attn_output"}},
		{model: "phi3", targets: []string{"all"}, want: []string{"attn_qkv", "attn_output", "ffn_up", "ffn_down"}},
		{model: "phi3", targets: []string{"ffn_gate"}, want: []string{"ffn_up"}},
		{model: "phi3", targets: []string{"up_proj"}, err: "phi3 has no module \"up_proj\""},
		{model: "gemma2", targets: []string{"all"}, want: []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}},
	} {
		t.Run(tc.model+"/"+strings.Join(tc.targets, ","), func(t *testing.T) {
			l, err := NewLoRA(models[tc.model], LoRAConfig{Rank: 4, Targets: tc.targets})
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			defer l.Close()
			assert.Equal(t, tc.want, l.Config.Targets)
			assert.Len(t, l.Names(), 2*2*len(tc.want), "one A/B pair per target per block")
		})
	}

	// Fused weights get one pair shaped like the fused matrix: Q, K and V rows for
	// attn_qkv (4 heads and 2 KV heads of 16), gate and up rows for Phi-3's ffn_up.
	l, err := NewLoRA(models["phi3"], LoRAConfig{Rank: 4, Targets: []string{"all"}})
	require.NoError(t, err)
	defer l.Close()
	assert.Equal(t, []int{64, 4}, l.tensor("blk.1.attn_qkv.weight.lora_a").Shape())
	assert.Equal(t, []int{4, (4 + 2*2) * 16}, l.tensor("blk.1.attn_qkv.weight.lora_b").Shape())
	assert.Equal(t, []int{4, 2 * 96}, l.tensor("blk.1.ffn_up.weight.lora_b").Shape())
	assert.Equal(t, []int{96, 4}, l.tensor("blk.1.ffn_down.weight.lora_a").Shape())
}

// TestDifferentiableOps checks the values and the backward pass of the ops rebuilt
// from differentiable ones (autograd.go) against float64 formulas: L = Σ w·op(x) for
// fixed random w, so ∇ₓL is the transposed Jacobian applied to w.
func TestDifferentiableOps(t *testing.T) {
	m := loadArchModel(t, writeArchModel(t, archCaseNamed(t, "phi2"))) // only its scheduler is used
	const rowLen, rows = 16, 4
	r := rand.New(rand.NewPCG(21, 22))
	x, w := make([]float32, rowLen*rows), make([]float32, rowLen*rows)
	for i := range x {
		x[i] = float32(-6 + 12*float64(i)/float64(len(x)-1) + 0.1*r.NormFloat64())
		w[i] = float32(r.NormFloat64())
	}
	const eps = 1e-5
	geluRef := func(v float64) (float64, float64) {
		const a, k = 0.044715, 0.7978845608028654 // √(2/π)
		z := k * (v + a*v*v*v)
		th := math.Tanh(z)
		return 0.5 * v * (1 + th), 0.5*(1+th) + 0.5*v*(1-th*th)*k*(1+3*a*v*v)
	}
	for _, tc := range []struct {
		name  string
		build func(b *builder, x *ggml.Tensor) *ggml.Tensor
		ref   func(x, w []float64) (y, grad []float64)
	}{
		{"gelu", (*builder).gelu, func(x, w []float64) (y, g []float64) {
			for i, v := range x {
				f, d := geluRef(v)
				y, g = append(y, f), append(g, d*w[i])
			}
			return y, g
		}},
		{"sigmoid", (*builder).sigmoid, func(x, w []float64) (y, g []float64) {
			for i, v := range x {
				s := 1 / (1 + math.Exp(-v))
				y, g = append(y, s), append(g, s*(1-s)*w[i])
			}
			return y, g
		}},
		{"layer_norm", func(b *builder, x *ggml.Tensor) *ggml.Tensor { return b.layerNorm(x, eps) }, func(x, w []float64) (y, g []float64) {
			for row := 0; row < len(x); row += rowLen {
				xs, ws := x[row:row+rowLen], w[row:row+rowLen]
				mean, v := 0.0, 0.0
				for _, e := range xs {
					mean += e / rowLen
				}
				for _, e := range xs {
					v += (e - mean) * (e - mean) / rowLen
				}
				sd := math.Sqrt(v + eps)
				ys := make([]float64, rowLen)
				mw, mwy := 0.0, 0.0
				for i, e := range xs {
					ys[i] = (e - mean) / sd
					mw += ws[i] / rowLen
					mwy += ws[i] * ys[i] / rowLen
				}
				for i := range xs {
					g = append(g, (ws[i]-mw-ys[i]*mwy)/sd)
				}
				y = append(y, ys...)
			}
			return y, g
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := m.newComputeContext()
			require.NoError(t, err)
			defer c.Close()
			b := &builder{c: c, m: m}
			var xt, wt, y, grad *ggml.Tensor
			var g *ggml.Graph
			require.NoError(t, ggml.Build(func() {
				xt = c.NewTensor(ggml.TypeF32, rowLen, rows).SetInput().SetParam()
				wt = c.NewTensor(ggml.TypeF32, rowLen, rows).SetInput()
				y = tc.build(b, xt).SetOutput()
				loss := c.Sum(c.Mul(y, wt)).SetOutput().SetLoss()
				g = c.NewGraph(m.graphNodes, true)
				g.Expand(loss)
				g.BuildBackward(c)
				grad = g.Grad(xt)
				require.NotNil(t, grad)
				grad.SetOutput()
				g.Expand(grad)
			}))
			require.NoError(t, m.sched.Alloc(g))
			require.NoError(t, xt.SetF32(x))
			require.NoError(t, wt.SetF32(w))
			g.Reset()
			require.NoError(t, m.sched.Run(g))
			gotY, err := y.F32()
			require.NoError(t, err)
			gotG, err := grad.F32()
			require.NoError(t, err)
			x64, w64 := make([]float64, len(x)), make([]float64, len(w))
			for i := range x {
				x64[i], w64[i] = float64(x[i]), float64(w[i])
			}
			wantY, wantG := tc.ref(x64, w64)
			worstY, worstG := 0.0, 0.0
			for i := range wantY {
				worstY = max(worstY, math.Abs(float64(gotY[i])-wantY[i]))
				worstG = max(worstG, math.Abs(float64(gotG[i])-wantG[i]))
				assert.InDeltaf(t, wantY[i], gotY[i], 1e-5*(1+math.Abs(wantY[i])), "%s(%g)", tc.name, x[i])
				assert.InDeltaf(t, wantG[i], gotG[i], 1e-4*(1+math.Abs(wantG[i])), "∇%s at %g", tc.name, x[i])
			}
			t.Logf("%s on [-6, 6]: max |value - float64| = %.1e, max |gradient - float64| = %.1e", tc.name, worstY, worstG)
		})
	}
}

func TestGemma2HParams(t *testing.T) {
	m := loadArchModel(t, writeArchModel(t, archCaseNamed(t, "gemma2")))
	hp := m.HP
	assert.Equal(t, 8, hp.SlidingWindow)
	assert.Equal(t, []bool{true, false}, hp.SWA, "the first of every two layers slides")
	assert.Equal(t, float32(0.5), hp.AttnSoftcap)
	assert.Equal(t, float32(3), hp.FinalSoftcap)
	assert.Equal(t, hp.RopeBase, hp.RopeBaseSWA)

	meta := &gguf.Metadata{}
	for _, tc := range []struct {
		pattern gguf.Value
		want    []bool
	}{
		{gguf.ValueOf(uint32(3)), []bool{true, true, false, true}},
		{gguf.ValueOf(uint32(0)), []bool{true, true, true, true}},
		{gguf.ArrayOf([]bool{false, true, true, false}), []bool{false, true, true, false}},
	} {
		meta.Set("gemma2.attention.sliding_window_pattern", tc.pattern)
		got := HParams{Arch: "gemma2", Layers: 4, RopeBase: 10000}
		require.NoError(t, readGemma2HParams(meta, &got))
		assert.Equal(t, tc.want, got.SWA)
		assert.Equal(t, 4096, got.SlidingWindow, "llama.cpp's default window")
		assert.Equal(t, float32(50), got.AttnSoftcap)
		assert.Equal(t, float32(30), got.FinalSoftcap)
	}
	meta.Set("gemma2.attention.sliding_window_pattern", gguf.ArrayOf([]bool{true}))
	assert.ErrorContains(t, readGemma2HParams(meta, &HParams{Arch: "gemma2", Layers: 4}), "1 flags for 4 layers")
}

// TestArchQuantizedBase runs each new architecture on Q8_0 weights (QLoRA): logits with
// a LoRA on every target against libllama with our adapter file, and a training step
// whose gradients must be finite and nonzero for every adapter tensor. Fused weights
// are views of a quantized product here, and gradients cross quantized matrices.
func TestArchQuantizedBase(t *testing.T) {
	for _, ac := range archCases {
		if ac.name == "phi2" { // phi2-fused-qkv covers it
			continue
		}
		ac.weights = ggml.TypeQ8_0
		t.Run(ac.name, func(t *testing.T) {
			path := writeArchModel(t, ac)
			m := loadArchModel(t, path)
			require.Equal(t, ggml.TypeQ8_0, m.Weight("blk.1.ffn_down.weight").Type())
			ref := newLlamaRef(t, path)
			l := trainedLoRA(t, m, LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"all"}})
			adapter := filepath.Join(t.TempDir(), "adapter.gguf")
			require.NoError(t, l.WriteAdapter(adapter))
			ad, err := bindings.LoadAdapter(ref.m, adapter)
			require.NoError(t, err)
			defer ad.Close()
			require.NoError(t, ref.c.SetAdapters([]bindings.AdapterScale{{Adapter: ad, Scale: 1}}))
			m.geluOp = true
			worst, _ := compareWithLibllama(t, m, ref, [][]int32{ref.tokenize(t, "Soil holds more carbon than the atmosphere and all plants together.")}, l, 1e-4)
			m.geluOp = false

			loss, grads := lossAndGrads(t, m, l, testBatch(t))
			require.False(t, math.IsNaN(loss) || math.IsInf(loss, 0), "loss %g", loss)
			for _, name := range l.Names() {
				norm := 0.0
				for _, g := range grads[name] {
					require.False(t, math.IsNaN(float64(g)) || math.IsInf(float64(g), 0), name)
					norm += float64(g) * float64(g)
				}
				assert.Positive(t, norm, "%s gets no gradient", name)
			}
			t.Logf("%s on Q8_0: logits with LoRA vs libllama %.2e of range; training step loss %.4f", ac.name, worst, loss)
		})
	}
}

// TestArchRejectsIncompleteFiles checks the per-architecture checks at load time.
func TestArchRejectsIncompleteFiles(t *testing.T) {
	without := func(name string) func(b *gguf.Builder) {
		return func(b *gguf.Builder) {
			b.Tensors = slices.DeleteFunc(b.Tensors, func(t gguf.Tensor) bool { return t.Name == name })
		}
	}
	for _, tc := range []struct {
		base string // archCase name
		edit func(b *gguf.Builder)
		err  string
	}{
		{"qwen2", without("blk.1.attn_k.weight"), "block 1 has neither attn_qkv.weight nor attn_k.weight"},
		{"phi3", without("blk.0.attn_qkv.weight"), "block 0 has neither attn_qkv.weight nor attn_q.weight"},
		{"qwen2", func(b *gguf.Builder) { b.Meta.Set("qwen2.rope.scaling.type", gguf.ValueOf("yarn")) },
			`qwen2.rope.scaling.type "yarn" is not supported`},
		{"phi3", addRopeFactors(ropeFactorsShort, 7, 1, 2), "rope_factors_short.weight has shape [7]"},
		{"qwen2-fused-qkv-split-biases", without("blk.0.attn_v.bias"), ""}, // biases are optional
	} {
		ac := archCaseNamed(t, tc.base)
		ac.edit = tc.edit
		path := writeArchModel(t, ac)
		m, err := loadTestModel(path, ModelOptions{Threads: 1})
		if tc.err == "" {
			require.NoError(t, err)
			m.Close()
			continue
		}
		assert.ErrorContainsf(t, err, tc.err, "%s", ac.name)
	}
}

func TestRopeScalingHParams(t *testing.T) {
	read := func(kv map[string]gguf.Value) (HParams, error) {
		meta := &gguf.Metadata{}
		meta.Set("general.architecture", gguf.ValueOf("llama"))
		for k, v := range map[string]uint32{"embedding_length": 64, "block_count": 2, "attention.head_count": 4, "feed_forward_length": 96} {
			meta.Set("llama."+k, gguf.ValueOf(v))
		}
		for k, v := range kv {
			meta.Set("llama."+k, v)
		}
		return readHParams(meta)
	}
	for _, tc := range []struct {
		kv          map[string]gguf.Value
		scale, attn float32
		orig        int
	}{
		{nil, 1, 0, 0},
		{map[string]gguf.Value{"rope.scale_linear": gguf.ValueOf(float32(2))}, 0.5, 0, 0},
		{map[string]gguf.Value{"rope.scaling.factor": gguf.ValueOf(float32(4)), "rope.scale_linear": gguf.ValueOf(float32(2))}, 0.25, 0, 0},
		{map[string]gguf.Value{"rope.scaling.type": gguf.ValueOf("none"), "rope.scaling.factor": gguf.ValueOf(float32(4))}, 1, 0, 0},
		{map[string]gguf.Value{"rope.scaling.type": gguf.ValueOf("longrope"), "rope.scaling.attn_factor": gguf.ValueOf(float32(1.19)),
			"rope.scaling.original_context_length": gguf.ValueOf(uint32(4096))}, 1, 1.19, 4096},
	} {
		hp, err := read(tc.kv)
		require.NoError(t, err)
		assert.Equal(t, tc.scale, hp.RopeScale, "%v", tc.kv)
		assert.Equal(t, tc.attn, hp.RopeAttnFactor, "%v", tc.kv)
		assert.Equal(t, tc.orig, hp.RopeOrigContext, "%v", tc.kv)
	}
	_, err := read(map[string]gguf.Value{"rope.scaling.type": gguf.ValueOf("yarn")})
	assert.ErrorContains(t, err, "not supported")
}

// TestArchTrainLearns runs Train on each architecture on a short repeating token
// pattern, with the same data held out: the validation loss must fall well below
// its start, which only happens when every piece of the graph passes gradients.
func TestArchTrainLearns(t *testing.T) {
	for _, name := range []string{"qwen2", "phi2-fused-qkv", "phi3", "gemma2"} {
		t.Run(name, func(t *testing.T) {
			m := loadArchModel(t, writeArchModel(t, archCaseNamed(t, name)))
			var ids []int32
			for len(ids) < 16*32 {
				ids = append(ids, 100, 2000, 731, 5, 4096, 77, 300)
			}
			data := Windows(ids, 32, 32)
			cfg := Config{
				LoRA:      LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"all"}, Seed: 1},
				Optimizer: OptimizerConfig{ClipNorm: 1},
				Schedule:  Schedule{LR: 1e-2, Kind: ScheduleConstant},
				Steps:     10,
				BatchSize: 2,
				SeqLen:    32,
				EvalEvery: 10,
				Seed:      2,
			}
			res, err := Train(context.Background(), m, cfg, data, data)
			require.NoError(t, err)
			defer res.LoRA.Close()
			require.GreaterOrEqual(t, len(res.Evals), 2)
			first, last := res.Evals[0].Loss, res.Evals[len(res.Evals)-1].Loss
			t.Logf("%s: validation loss %.3f → %.3f in %d steps", name, first, last, res.Steps)
			// Gemma 2's logit soft-cap (3 here) bounds how low the loss can go.
			assert.Less(t, last, 0.8*first)
		})
	}
}

// assertBF16Kept compares a gradient computed from BF16 copies of the kept products
// (checkpointKeepAll) with the exact one, norm-wise, and returns whether they differ.
// Each copy rounds to nearest with 8 significant bits: every copied value moves by a
// relative δ, |δ| ≤ u = 2⁻⁸. To first order a gradient term moves by its factors' δ: V
// and the attention output enter a term once and linearly (the latter through the
// residual sum and a norm's input, which the norm's scale invariance does not amplify),
// up once linearly, and gate once through silu (|x·silu'(x)| ≤ 1.1·|silu(x)|) or silu'
// (whose change |x·silu”(x)|·δ ≤ 0.6u is absolute: large relative to the term only where
// silu' and so the term are near zero). No term holds more than two copied factors: at
// most about 2·2u = 4u of each term. A sum of terms of mixed signs could amplify that
// relative to the sum; the nine architectures' random models show at most 1.4u, so 4u is
// the bound, with no room taken for cancellation.
func assertBF16Kept(t *testing.T, name string, got, want []float32) bool {
	t.Helper()
	var diff, norm float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		diff += d * d
		norm += float64(want[i]) * float64(want[i])
	}
	diff, norm = math.Sqrt(diff), math.Sqrt(norm)
	const u = 1.0 / 256
	if norm == 0 {
		require.Zero(t, diff, name)
		return false
	}
	require.LessOrEqualf(t, diff/norm, 4*u, "%s: gradient with BF16 copies of the kept products", name)
	return diff > 0
}
