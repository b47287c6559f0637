package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
)

// writeRandomLlama writes a small random-weight llama whose matrices are of type typ
// (norms stay F32), with stories260K's 512-token vocabulary so libllama can load it.
// Dimensions are multiples of 256 so every block-quantized type fits.
// With dequantized set, matrices are stored as F32 holding the dequantized values:
// the same function without the quantization in the matrix products.
func writeRandomLlama(t *testing.T, path string, typ ggml.Type, dequantized bool) {
	writeLlama(t, path, randomLlama{embd: 256, matrices: typ, embeddings: typ, dequantized: dequantized})
}

// randomLlama says what writeLlama writes: the width, the type of the token embeddings,
// that of every other matrix, and whether quantized ones are stored dequantized to F32.
type randomLlama struct {
	embd                 int
	matrices, embeddings ggml.Type
	dequantized          bool
	// outputNorm, if not 0, scales the final norm's weights: the gradients reaching the
	// blocks shrink by as much (small gradients for F16 products).
	outputNorm float64
}

func writeLlama(t *testing.T, path string, spec randomLlama) {
	t.Helper()
	requireStories(t)
	src, err := gguf.Open(storiesPath)
	require.NoError(t, err)
	defer src.Close()
	const ff, heads, kv, layers, vocab = 512, 4, 2, 2, 512
	embd, typ, dequantized := spec.embd, spec.matrices, spec.dequantized
	meta := &gguf.Metadata{}
	meta.Set("general.architecture", gguf.ValueOf("llama"))
	for key, v := range src.Meta.All() {
		if strings.HasPrefix(key, "tokenizer.") {
			meta.Set(key, v)
		}
	}
	for key, v := range map[string]uint32{"embedding_length": uint32(embd), "feed_forward_length": ff, "attention.head_count": heads,
		"attention.head_count_kv": kv, "block_count": layers, "context_length": 512, "rope.dimension_count": uint32(embd / heads)} {
		meta.Set("llama."+key, gguf.ValueOf(v))
	}
	meta.Set("llama.attention.layer_norm_rms_epsilon", gguf.ValueOf(float32(1e-5)))
	meta.Set("llama.rope.freq_base", gguf.ValueOf(float32(10000)))
	seed := uint64(typ)
	if spec.embeddings != typ {
		seed += uint64(spec.embeddings) << 8
	}
	r := rand.New(rand.NewPCG(seed, 77))
	b := &gguf.Builder{Meta: meta}
	add := func(name string, typ ggml.Type, scale float64, ne ...int) {
		v := make([]float32, ne[0]*max(1, len(ne)-1)*func() int {
			if len(ne) > 1 {
				return ne[1]
			}
			return 1
		}()/max(1, len(ne)-1))
		for i := range v {
			if scale == 0 {
				v[i] = 1 + float32(0.1*r.NormFloat64())
			} else if name == "output_norm.weight" {
				v[i] = float32(scale * (1 + 0.1*r.NormFloat64()))
			} else {
				v[i] = float32(scale * r.NormFloat64())
			}
		}
		data, err := ggml.Quantize(typ, v, ne[0])
		require.NoError(t, err)
		if dequantized && typ != ggml.TypeF32 {
			deq, err := ggml.Dequantize(typ, data, len(v))
			require.NoError(t, err)
			if data, err = ggml.Quantize(ggml.TypeF32, deq, ne[0]); err != nil {
				require.NoError(t, err)
			}
			typ = ggml.TypeF32
		}
		dims := make([]int64, len(ne))
		for i, d := range ne {
			dims[i] = int64(d)
		}
		b.Tensors = append(b.Tensors, gguf.Tensor{TensorInfo: gguf.TensorInfo{Name: name, Dims: dims, Type: gguf.Type(typ)}, Data: gguf.DataBytes(data)})
	}
	add("token_embd.weight", spec.embeddings, 1, embd, vocab)
	add("output_norm.weight", ggml.TypeF32, spec.outputNorm, embd)
	add("output.weight", typ, 1/math.Sqrt(float64(embd)), embd, vocab)
	for l := 0; l < layers; l++ {
		p := blockName(l, "")
		add(p+"attn_norm.weight", ggml.TypeF32, 0, embd)
		add(p+"attn_q.weight", typ, 1/math.Sqrt(float64(embd)), embd, embd)
		add(p+"attn_k.weight", typ, 1/math.Sqrt(float64(embd)), embd, kv*embd/heads)
		add(p+"attn_v.weight", typ, 1/math.Sqrt(float64(embd)), embd, kv*embd/heads)
		add(p+"attn_output.weight", typ, 1/math.Sqrt(float64(embd)), embd, embd)
		add(p+"ffn_norm.weight", ggml.TypeF32, 0, embd)
		add(p+"ffn_gate.weight", typ, 1/math.Sqrt(float64(embd)), embd, ff)
		add(p+"ffn_up.weight", typ, 1/math.Sqrt(float64(embd)), embd, ff)
		add(p+"ffn_down.weight", typ, 1/math.Sqrt(ff), ff, embd)
	}
	require.NoError(t, b.WriteFile(path))
}

// TestQuantizedBases runs forward (against libllama, with a LoRA applied) and a
// gradient check on bases of every weight type QLoRA targets.
func TestQuantizedBases(t *testing.T) {
	for _, typ := range []ggml.Type{ggml.TypeF16, ggml.TypeBF16, ggml.TypeQ8_0, ggml.TypeQ4_0, ggml.TypeQ4_K, ggml.TypeIQ4_NL} {
		t.Run(typ.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.gguf")
			writeRandomLlama(t, path, typ, false)
			m, l := loadWithRandomLoRA(t, path, ModelOptions{Threads: 1})
			assert.Equal(t, typ, m.Weight("blk.1.ffn_down.weight").Type())

			// Forward with the adapter against libllama with our adapter file.
			adapter := filepath.Join(t.TempDir(), "adapter.gguf")
			require.NoError(t, l.WriteAdapter(adapter))
			ref := newLlamaRef(t, path)
			if m.Weight("blk.1.ffn_up.weight").Repacked() {
				ref = newLlamaRefRepacked(t, path)
			}
			tokens := ref.tokenize(t, "Once upon a time, there was a frog.")
			base := ref.logits(t, tokens)
			m.kvType = ggml.TypeF16
			ours, err := m.Logits(tokens, 1, len(tokens), nil)
			require.NoError(t, err)
			worst, close := 0.0, 0
			V := m.HP.Vocab
			for i := range tokens {
				d, rng := maxAbsDiff(ours[i*V:(i+1)*V], base[i])
				worst = max(worst, d/rng)
				if d/rng <= 1e-4 {
					close++
				}
			}
			// libllama repacks the weights ours repacks (Q4_K on x86 with AVX2) and no
			// others, so that its products use the kernels ours do. (On an AVX2 build the
			// repacked Q4_K kernel and the plain one differ at most positions by more than
			// 1e-4 of the range, up to 1e-2: they are two computations, not one.)
			// The quantized types' products first round activations to Q8_0 or Q8_K. Our
			// graph and libllama's differ in F32 rounding (1e-7 of the range with F32
			// weights), which that step absorbs, so most positions come out bit-identical;
			// but where a value lies within that rounding of a quantization boundary it
			// moves one step, and its position then differs by a few 1e-3 of the range.
			// Over four prompts (110 positions) that happened at 15 positions for Q4_K,
			// 1 for IQ4_NL, none for Q4_0 and Q8_0; this prompt has one such position.
			tol := 1e-4
			if typ.IsQuantized() {
				assert.GreaterOrEqual(t, close, len(tokens)*3/4, "positions within 1e-4 of libllama's logits")
				tol = 1e-2
			}
			assert.LessOrEqual(t, worst, tol, "base logits vs libllama")
			m.kvType = ggml.TypeF32

			// Gradients of A and B through the quantized weights equal those through the
			// same weights dequantized to F32, up to ggml rounding activations to the
			// weight's dot-product type (f16, q8_0, q8_K) in each product.
			twin := filepath.Join(t.TempDir(), "twin.gguf")
			writeRandomLlama(t, twin, typ, true)
			mf, lf := loadWithRandomLoRA(t, twin, ModelOptions{Threads: 1})
			b := testBatch(t)
			lossQ, gq := lossAndGrads(t, m, l, b)
			lossF, gf := lossAndGrads(t, mf, lf, b)
			assert.InDelta(t, lossF, lossQ, 1e-2*lossF, "loss")
			gworst := relativeL2(gq, gf)

			// In the generic graph (a GPU's) a quantized weight reaches only mul_mat and
			// get_rows, which the CUDA backend runs for these types: nothing in a
			// training step (OUT_PROD, or a cpy from a quantized type) would send it back
			// to the CPU. With the CPU's fused ops, the input gradients' copies are made
			// by DequantTranspose instead of get_rows.
			if typ.IsQuantized() {
				s, _ := testStep(t, m, l, l.params(), b, 0, checkpointNone)
				assertAllOnGPU(t, m, s.g, typ.String())
				uses := map[string]int{}
				for i := 0; i < s.g.Len(); i++ {
					n := s.g.Node(i)
					for j := 0; j < 10; j++ {
						if src := n.Src(j); src != nil && src.Type().IsQuantized() {
							uses[n.Op()]++
						}
					}
				}
				copier := "GET_ROWS"
				if m.fusedOps() {
					copier = "CUSTOM"
				}
				assert.Positive(t, uses["MUL_MAT"])
				assert.Positive(t, uses[copier], "input gradients dequantize with %s", copier)
				delete(uses, "MUL_MAT")
				delete(uses, copier)
				delete(uses, "GET_ROWS") // the token embeddings' lookup
				if m.fusedOps() {
					// The chunks of the output layer (ggml.LinearCrossEntropy): views of
					// whole rows, read by mul_mat and DequantTranspose.
					delete(uses, "VIEW")
				}
				assert.Empty(t, uses, "ops other than mul_mat, get_rows and %s reading a quantized weight", copier)
			}
			assert.LessOrEqual(t, gworst, 2e-2, "relative L2 difference of all LoRA gradients")
			t.Logf("%s: base logits vs libllama %.2e of range; LoRA gradients vs dequantized-F32 twin: %.2e relative L2", typ, worst, gworst)
		})
	}
}

// TestEmbeddingsInWholeBlocks looks tokens up in IQ4_NL embeddings whose rows are not
// whole 256-value super-blocks (96 and SmolLM2's 576 values), which CUDA's get_rows
// does not take: every get_rows of the step must read whole super-blocks, and the
// logits and gradients must equal those of the same embeddings stored dequantized.
func TestEmbeddingsInWholeBlocks(t *testing.T) {
	for _, embd := range []int{96, 576} {
		t.Run(fmt.Sprint(embd), func(t *testing.T) {
			var ms [2]*Model
			var ls [2]*LoRA
			for i, deq := range []bool{false, true} {
				path := filepath.Join(t.TempDir(), "model.gguf")
				writeLlama(t, path, randomLlama{embd: embd, matrices: ggml.TypeF32, embeddings: ggml.TypeIQ4_NL, dequantized: deq})
				ms[i], ls[i] = loadWithRandomLoRA(t, path, ModelOptions{Threads: 1})
			}
			require.Equal(t, ggml.TypeIQ4_NL, ms[0].Weight("token_embd.weight").Type())
			require.Equal(t, ggml.TypeF32, ms[1].Weight("token_embd.weight").Type())

			b := testBatch(t)
			var logits [2][]float32
			for i, m := range ms {
				var err error
				logits[i], err = m.Logits(b.Tokens, b.B, b.T, ls[i])
				require.NoError(t, err)
			}
			assert.Equal(t, logits[1], logits[0], "logits with the embeddings looked up by groups")
			lossQ, gq := lossAndGrads(t, ms[0], ls[0], b)
			lossF, gf := lossAndGrads(t, ms[1], ls[1], b)
			assert.Equal(t, lossF, lossQ)
			assert.Equal(t, gf, gq)

			s, _ := testStep(t, ms[0], ls[0], ls[0].params(), b, 0, checkpointNone)
			lookups := 0
			for i := 0; i < s.g.Len(); i++ {
				if n := s.g.Node(i); n.Op() == "GET_ROWS" && n.Src(0).Type() == ggml.TypeIQ4_NL {
					assert.Zero(t, n.Src(0).Ne(0)%256, "get_rows of %d-value IQ4_NL rows", n.Src(0).Ne(0))
					lookups++
				}
			}
			assert.Equal(t, 1, lookups, "IQ4_NL get_rows in the step")
			assertAllOnGPU(t, ms[0], s.g, fmt.Sprintf("IQ4_NL embeddings of %d", embd))
		})
	}
}

// TestComputeType trains a step on a Q4_K base with its weights dequantized to F32, BF16
// and F16 for the backward pass's products, and on an F32 base with its weights' copies
// for those products rounded to each: the same loss (the forward pass does not change),
// gradients within each type's rounding of F32's, and the transposed copies the
// products read of the type asked for. BF16 keeps 8 bits of each weight and gradient
// value: 1e-2 relative L2 holds the measured difference with room for the conditioning
// of a few layers' products. F16 keeps 11, a bound 2⁻³ of that, which holds for small
// gradients too only because the products scale them into F16's range (the second
// model below; ggml.TestHalfProduct).
func TestComputeType(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.gguf")
	writeRandomLlama(t, path, ggml.TypeQ4_K, false)
	_, err := LoadModel(path, ModelOptions{Threads: 1, ComputeType: "q4_k"})
	require.ErrorContains(t, err, `compute type "q4_k"`)
	f32Path := filepath.Join(t.TempDir(), "f32.gguf")
	writeRandomLlama(t, f32Path, ggml.TypeF32, false)

	b := testBatch(t)
	types := []ggml.Type{ggml.TypeF32, ggml.TypeBF16, ggml.TypeF16}
	bounds := map[ggml.Type]float64{ggml.TypeBF16: 1e-2, ggml.TypeF16: 1e-2 / 8}
	for _, base := range []string{path, f32Path} {
		for _, keep := range []bool{false, true} {
			name := fmt.Sprintf("%s keep %v", filepath.Base(base), keep)
			var losses [3]float64
			var grads [3]map[string][]float32
			for i, ct := range types {
				m, l := loadWithRandomLoRA(t, base, ModelOptions{Threads: 1, ComputeType: ct.String(), KeepTransposed: keep})
				require.Equal(t, ct, m.ComputeType())
				losses[i], grads[i] = lossAndGrads(t, m, l, b)
				s, _ := testStep(t, m, l, l.params(), b, 0, checkpointNone)
				reads := map[ggml.Type]int{}
				for j := 0; j < s.g.Len(); j++ {
					if n := s.g.Node(j); n.Op() == "MUL_MAT" {
						reads[n.Src(0).Type()]++
					}
				}
				assert.Positive(t, reads[ct], "%s: products by %s transposed weights", name, ct)
				for _, other := range types[1:] {
					if other != ct {
						assert.Zero(t, reads[other], "%s, %s: products by %s weights", name, ct, other)
					}
				}
			}
			for i, ct := range types[1:] {
				assert.Equal(t, losses[0], losses[i+1], "%s, %s: loss", name, ct)
				rel := relativeL2(grads[i+1], grads[0])
				assert.Positive(t, rel, "%s: %s rounds the gradients", name, ct)
				assert.LessOrEqual(t, rel, bounds[ct], "%s: relative L2 difference of the LoRA gradients, %s against F32", name, ct)
				t.Logf("%s: LoRA gradients with %s products vs F32: %.2e relative L2", name, ct, rel)
			}
			if base == path {
				break // a quantized base keeps no copies
			}
		}
	}

	// Gradients 2⁻²⁴ the size (a final norm's weights that small; the largest LoRA
	// gradient is 7e-9): ggml's plain F16 products round the rows they multiply to zeros
	// and F16 subnormals, and the LoRA gradients came out 0.87 relative L2 off (measured
	// with the scaling taken out); with each row scaled into F16's range first they keep
	// F16's bound.
	small := filepath.Join(t.TempDir(), "small.gguf")
	writeLlama(t, small, randomLlama{embd: 256, matrices: ggml.TypeQ4_K, embeddings: ggml.TypeQ4_K, outputNorm: math.Exp2(-24)})
	var smallGrads [2]map[string][]float32
	for i, ct := range []ggml.Type{ggml.TypeF32, ggml.TypeF16} {
		m, l := loadWithRandomLoRA(t, small, ModelOptions{Threads: 1, ComputeType: ct.String()})
		_, smallGrads[i] = lossAndGrads(t, m, l, b)
	}
	require.Positive(t, maxAbsGrad(smallGrads[0]))
	rel := relativeL2(smallGrads[1], smallGrads[0])
	assert.LessOrEqual(t, rel, bounds[ggml.TypeF16], "small gradients: relative L2 difference of the LoRA gradients, F16 against F32")
	t.Logf("small gradients (largest LoRA gradient %.1e): F16 products vs F32 %.2e relative L2", maxAbsGrad(smallGrads[0]), rel)

	m, err := loadTestModel(path, ModelOptions{Threads: 1})
	require.NoError(t, err)
	defer m.Close()
	want := ggml.TypeF32
	switch {
	case gpuTests:
	case ggml.CPUHasBF16():
		want = ggml.TypeBF16
	case ggml.CPUHasF16C():
		want = ggml.TypeF16
	}
	assert.Equal(t, want, m.ComputeType(), "the default")
}

// TestRepackedBase trains a step on a Q4_K base with its block weights in the CPU's
// repacking buffer and with them in the file's layout. The input gradients' transposed
// copies dequantize both layouts to the same bits (ggml.TestRepackedQ4K); the forward
// products quantize the same activations to Q8_K and sum the same integer products a
// sub-block at a time, but the repacked kernels may add the sub-blocks' scaled sums in
// another order: F32 rounding, a few units of 2⁻²⁴ of each product. The loss carries
// that on (1e-5 relative, a hundredfold conditioning to spare). The gradients also see
// its rare large effect: a value of the next product's input that the rounding moves
// across a Q8_K boundary moves by a whole quantization step, as quantizing activations
// at all does, whose effect on these gradients TestQuantizedBases bounds at 2e-2 of
// their joint norm.
func TestRepackedBase(t *testing.T) {
	if !ggml.CanRepack(ggml.TypeQ4_K, 8) || gpuTests {
		t.Skip("the CPU backend repacks Q4_K only on x86 with AVX2")
	}
	path := filepath.Join(t.TempDir(), "model.gguf")
	writeRandomLlama(t, path, ggml.TypeQ4_K, false)
	packed, lp := loadWithRandomLoRA(t, path, ModelOptions{Threads: 1})
	plain, lq := loadWithRandomLoRA(t, path, ModelOptions{Threads: 1, NoRepack: true})
	require.True(t, packed.Weight("blk.0.ffn_gate.weight").Repacked())
	require.False(t, plain.Weight("blk.0.ffn_gate.weight").Repacked())
	require.False(t, packed.Weight("token_embd.weight").Repacked(), "embeddings are looked up by row")
	b := testBatch(t)
	lossP, gp := lossAndGrads(t, packed, lp, b)
	lossQ, gq := lossAndGrads(t, plain, lq, b)
	assert.InEpsilon(t, lossQ, lossP, 1e-5, "loss")
	rel := relativeL2(gp, gq)
	t.Logf("loss %.9g repacked, %.9g plain; LoRA gradients %.2e relative L2", lossP, lossQ, rel)
	assert.LessOrEqual(t, rel, 2e-2, "relative L2 difference of all LoRA gradients")
}

// relativeL2 is ‖got − want‖ / ‖want‖ over every tensor of want, by name.
func relativeL2(got, want map[string][]float32) float64 {
	var num, den float64
	for name, w := range want {
		for i := range w {
			d := float64(got[name][i] - w[i])
			num += d * d
			den += float64(w[i]) * float64(w[i])
		}
	}
	return math.Sqrt(num / den)
}

// maxAbsGrad is the largest magnitude among the gradients.
func maxAbsGrad(grads map[string][]float32) float64 {
	var m float64
	for _, g := range grads {
		for _, v := range g {
			m = max(m, math.Abs(float64(v)))
		}
	}
	return m
}
