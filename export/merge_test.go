package export_test

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/export"
	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/quant"
)

const prompt = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."

// allTargets adapts every weight llama.cpp applies adapters to, including the
// token embedding (whose pair is stored flipped) and the output matrix.
var allTargets = []string{"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
	"ffn_gate.weight", "ffn_up.weight", "ffn_down.weight", "token_embd.weight", "output.weight"}

func merge(t *testing.T, base string, typ string, adapters ...export.AdapterScale) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "merged.gguf")
	var calls int
	sum, err := export.Merge(context.Background(), export.MergeOptions{Base: base, Adapters: adapters, Out: out, Type: typ,
		Progress: func(p export.Progress) {
			calls++
			assert.Equal(t, calls, p.Done)
			assert.LessOrEqual(t, p.BytesDone, p.BytesTotal)
		}})
	require.NoError(t, err)
	assert.Equal(t, sum.Tensors, calls, "one progress call per tensor")
	return out
}

// compareLogits asserts that two models (with adapters on the first) give the
// same logits within tol of the logit range, and returns the worst relative diff.
func compareLogits(t *testing.T, got, want []float32, tol float64, what string) float64 {
	t.Helper()
	d, rng := maxAbsDiff(got, want)
	assert.LessOrEqualf(t, d, tol*rng, "%s: max |diff| %g, logit range %g", what, d, rng)
	return d / rng
}

// TestMergeF32MatchesLoRA: the merged F32 model's llama.cpp logits equal
// llama.cpp's logits of the base with the adapters applied (--lora), and those
// of llama-export-lora's merge of the same adapters.
func TestMergeF32MatchesLoRA(t *testing.T) {
	base := testenv.Stories(t)
	exportLora := tool(t, "llama-export-lora")
	a1 := writeAdapter(t, base, adapterSpec{targets: allTargets, rank: 8, alpha: 16, seed: 1, stdB: 0.01})
	a2 := writeAdapter(t, base, adapterSpec{targets: allTargets, rank: 4, alpha: 0, seed: 2, stdB: 0.01})
	merged := merge(t, base, "", export.AdapterScale{Path: a1, Scale: 1}, export.AdapterScale{Path: a2, Scale: 0.5})

	theirs := filepath.Join(t.TempDir(), "export-lora.gguf")
	testenv.Run(t, exportLora, "-m", base, "--lora", a1, "--lora-scaled", a2+":0.5", "-o", theirs, "-t", "2")

	// llama.cpp keeps K and V in an F16 cache. A merged weight and a
	// run-time adapter agree to float32 rounding (about 1e-7 of the range at
	// the first positions), but once a K or V value lies near an F16 rounding
	// boundary the two round it differently and later positions differ by
	// about 1e-4 of the range; llama-export-lora's merge shows the same. So
	// the 1e-4 bound is asserted on a short prompt, and on a long one our
	// merge must be no further from base + --lora than llama-export-lora's.
	ref := newLibllama(t, base)
	mergedLL := newLibllama(t, merged)
	elLL := newLibllama(t, theirs)
	plain := ref.logits(t, prompt)
	ref.withAdapters(t, []string{a1, a2}, []float32{1, 0.5})
	for _, text := range []string{"Once upon a time", prompt} {
		want := ref.logits(t, text)
		moved, _ := maxAbsDiff(plain[:len(want)], want)
		require.Greater(t, moved, 0.5, "the adapters must change the logits for the comparison to mean anything")
		got, el := mergedLL.logits(t, text), elLL.logits(t, text)
		dOurs, rng := maxAbsDiff(got, want)
		dEL, _ := maxAbsDiff(el, want)
		dBoth, _ := maxAbsDiff(got, el)
		t.Logf("F32, %d tokens: adapters move logits by up to %.3f (range %.1f); max |diff| / range: merged vs base+lora %.2e, export-lora vs base+lora %.2e, merged vs export-lora %.2e",
			len(want)/512, moved, rng, dOurs/rng, dEL/rng, dBoth/rng)
		if text != prompt {
			assert.LessOrEqual(t, dOurs, 1e-4*rng, "merged vs base + --lora")
		} else {
			assert.LessOrEqual(t, dOurs, max(1.5*dEL, 1e-4*rng), "merged vs base + --lora, compared with llama-export-lora's own difference")
			assert.LessOrEqual(t, dOurs, 5e-4*rng, "merged vs base + --lora")
		}
		assert.LessOrEqual(t, dBoth, 1e-4*rng, "merged vs llama-export-lora")
	}

	f, err := gguf.Open(merged)
	require.NoError(t, err)
	defer f.Close()
	for _, tt := range f.Tensors {
		assert.Equal(t, gguf.TypeF32, tt.Type, tt.Name)
	}
	names, err := f.Meta.Strings("ecotune.merge.adapters")
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Base(a1), filepath.Base(a2)}, names)
	scales, err := f.Meta.Float32s("ecotune.merge.scales")
	require.NoError(t, err)
	assert.Equal(t, []float32{1, 0.5}, scales)
	name, err := f.Meta.String("general.base_model.0.name")
	require.NoError(t, err)
	assert.NotEmpty(t, name)
	tmpl, err := f.Meta.Strings("tokenizer.ggml.tokens")
	require.NoError(t, err)
	assert.Len(t, tmpl, 512, "the tokenizer is copied")
}

// TestMergeF16MatchesLoRA: an F16 base merged stays F16. Rounding the merged
// weights to F16 is the only difference from applying the adapter at run
// time, so llama-export-lora (which rounds the same sum) must agree closely.
func TestMergeF16MatchesLoRA(t *testing.T) {
	stories := testenv.Stories(t)
	exportLora := tool(t, "llama-export-lora")
	base := filepath.Join(t.TempDir(), "base-f16.gguf")
	_, err := quant.QuantizeModel(context.Background(), stories, base, quant.Options{Type: quant.FileTypeF16})
	require.NoError(t, err)
	a := writeAdapter(t, base, adapterSpec{targets: allTargets, rank: 8, alpha: 16, seed: 3, stdB: 0.05})
	merged := merge(t, base, "", export.AdapterScale{Path: a, Scale: 1})
	theirs := filepath.Join(t.TempDir(), "export-lora.gguf")
	testenv.Run(t, exportLora, "-m", base, "--lora", a, "-o", theirs, "-t", "2")

	// Storing the merged weights as F16 rounds them, which moves the logits
	// by about 1e-3 of their range from base + --lora, for llama-export-lora
	// as for us (the 1e-4 bound holds for F32 merges, TestMergeF32MatchesLoRA).
	// Ours and llama-export-lora's weights differ where the float32 sum lies
	// near an F16 rounding boundary: ours sums the update in float64, theirs
	// in float32 (TestMergeWeights checks ours against float64).
	ref := newLibllama(t, base)
	ref.withAdapters(t, []string{a}, []float32{1})
	want := ref.logits(t, prompt)
	got := newLibllama(t, merged).logits(t, prompt)
	el := newLibllama(t, theirs).logits(t, prompt)
	dOurs, rng := maxAbsDiff(got, want)
	dEL, _ := maxAbsDiff(el, want)
	dBoth, _ := maxAbsDiff(got, el)
	t.Logf("F16: max |diff| / range: merged vs base+lora %.2e, export-lora vs base+lora %.2e, merged vs export-lora %.2e", dOurs/rng, dEL/rng, dBoth/rng)
	assert.LessOrEqual(t, dOurs, max(1.5*dEL, 1e-4*rng), "merged vs base + --lora, compared with llama-export-lora's own difference")
	assert.LessOrEqual(t, dOurs, 3e-3*rng, "merged vs base + --lora")
	assert.LessOrEqual(t, dBoth, 3e-3*rng, "merged vs llama-export-lora")

	// Weight by weight, the two F16 merges differ by at most one F16 step.
	ours, err := gguf.Open(merged)
	require.NoError(t, err)
	defer ours.Close()
	other, err := gguf.Open(theirs)
	require.NoError(t, err)
	defer other.Close()
	var differ, total int
	for _, info := range ours.Tensors {
		x, y := tensorF32(t, ours, info.Name), tensorF32(t, other, info.Name)
		for i := range x {
			total++
			if x[i] != y[i] {
				differ++
				assert.LessOrEqualf(t, math.Abs(float64(x[i]-y[i])), math.Abs(float64(x[i]))/1024*1.001+6e-8, "%s[%d]: %g vs %g", info.Name, i, x[i], y[i])
			}
		}
	}
	t.Logf("F16 weights differing from llama-export-lora's (by one F16 step): %d of %d", differ, total)

	f, err := gguf.Open(merged)
	require.NoError(t, err)
	defer f.Close()
	q, _ := f.Tensor("blk.0.attn_q.weight")
	assert.Equal(t, gguf.TypeF16, q.Type)
}

// TestMergeQ4KPerplexity: merging straight to Q4_K (llama-quantize's Q4_K_M
// mix) gives the perplexity of merging at F16 with llama-export-lora and
// quantizing that with llama-quantize, within 1%.
func TestMergeQ4KPerplexity(t *testing.T) {
	if testing.Short() {
		t.Skip("runs llama-perplexity three times")
	}
	exportLora := tool(t, "llama-export-lora")
	llamaQuantize := tool(t, "llama-quantize")
	dir := t.TempDir()
	base := filepath.Join(dir, "base-f16.gguf")
	require.NoError(t, factory.Init(factory.Spec{Arch: "llama", Embd: 256, Layers: 2, Heads: 4, HeadsKV: 2, FF: 768,
		Type: gguf.TypeF16, Std: 0.05, VocabFile: vocab(t, "llama-spm"), Seed: 4}, base))
	a := writeAdapter(t, base, adapterSpec{targets: allTargets[:7], rank: 16, alpha: 32, seed: 5, stdB: 0.05})

	ours := merge(t, base, "q4_k", export.AdapterScale{Path: a, Scale: 1})
	f16 := filepath.Join(dir, "export-lora-f16.gguf")
	testenv.Run(t, exportLora, "-m", base, "--lora", a, "-o", f16, "-t", "2")
	theirs := filepath.Join(dir, "export-lora-q4_k_m.gguf")
	testenv.Run(t, llamaQuantize, f16, theirs, "Q4_K_M", "2")

	pBase, pF16, pOurs, pTheirs := perplexity(t, base), perplexity(t, f16), perplexity(t, ours), perplexity(t, theirs)
	t.Logf("perplexity: base %.3f, merged F16 %.3f, ours Q4_K %.3f, export-lora+llama-quantize Q4_K_M %.3f (%+.3f%%)",
		pBase, pF16, pOurs, pTheirs, 100*(pOurs/pTheirs-1))
	assert.Greater(t, math.Abs(pF16/pBase-1), 0.01, "the adapter must change perplexity for the comparison to mean anything")
	assert.InDelta(t, 1, pOurs/pTheirs, 0.01)

	f, err := gguf.Open(ours)
	require.NoError(t, err)
	defer f.Close()
	ft, err := f.Meta.Uint32("general.file_type")
	require.NoError(t, err)
	assert.Equal(t, uint32(quant.FileTypeQ4_K_M), ft)
	q, _ := f.Tensor("blk.0.attn_q.weight")
	assert.Equal(t, gguf.TypeQ4_K, q.Type)
}

// tensorF32 reads a tensor of f as float32 through ggml's converters.
func tensorF32(t testing.TB, f *gguf.File, name string) []float32 {
	t.Helper()
	info, ok := f.Tensor(name)
	require.True(t, ok, name)
	data, err := f.Data(name)
	require.NoError(t, err)
	n, _ := info.Elements()
	x, err := quant.Dequantize(ggml.Type(info.Type), data, int(n))
	require.NoError(t, err)
	return x
}

// TestMergeWeights checks every merged weight against W + Σ s·B·A computed
// here in float64 with a plain triple loop (the token embedding's pair
// flipped as llama.cpp's llm_build_inp_embd reads it), for an F32 and an F16 base.
func TestMergeWeights(t *testing.T) {
	stories := testenv.Stories(t)
	f16 := filepath.Join(t.TempDir(), "base-f16.gguf")
	_, err := quant.QuantizeModel(context.Background(), stories, f16, quant.Options{Type: quant.FileTypeF16})
	require.NoError(t, err)
	for _, base := range []string{stories, f16} {
		a1 := writeAdapter(t, base, adapterSpec{targets: allTargets, rank: 3, alpha: 6, seed: 11, stdB: 0.05})
		a2 := writeAdapter(t, base, adapterSpec{targets: []string{"attn_q.weight", "token_embd.weight"}, rank: 2, alpha: 0, seed: 12, stdB: 0.05})
		merged := merge(t, base, "", export.AdapterScale{Path: a1, Scale: 0.75}, export.AdapterScale{Path: a2, Scale: -1.5})
		bf, err := gguf.Open(base)
		require.NoError(t, err)
		mf, err := gguf.Open(merged)
		require.NoError(t, err)
		af := []*gguf.File{}
		for _, p := range []string{a1, a2} {
			f, err := gguf.Open(p)
			require.NoError(t, err)
			defer f.Close()
			af = append(af, f)
		}
		scales := []float64{0.75 * 6 / 3, -1.5}
		changed := 0
		for _, info := range bf.Tensors {
			out, ok := mf.Tensor(info.Name)
			require.True(t, ok)
			require.Equal(t, info.Type, out.Type, "types are kept")
			w, got := tensorF32(t, bf, info.Name), tensorF32(t, mf, info.Name)
			ref := make([]float64, len(w))
			for i, v := range w {
				ref[i] = float64(v)
			}
			adapted := false
			for ai, a := range af {
				if _, ok := a.Tensor(info.Name + ".lora_a"); !ok {
					continue
				}
				adapted = true
				A, B := tensorF32(t, a, info.Name+".lora_a"), tensorF32(t, a, info.Name+".lora_b")
				ai0, _ := a.Tensor(info.Name + ".lora_a")
				cols, rows := int(info.Dims[0]), int(info.Dims[1])
				for i := range rows {
					for j := range cols {
						var sum float64
						if info.Name == "token_embd.weight" {
							r := int(ai0.Dims[0]) // A ne [r, vocab], B ne [r, embd]
							for k := range r {
								sum += float64(A[i*r+k]) * float64(B[j*r+k])
							}
						} else {
							r := int(ai0.Dims[1]) // A ne [n_in, r], B ne [r, n_out]
							for k := range r {
								sum += float64(B[i*r+k]) * float64(A[k*cols+j])
							}
						}
						ref[i*cols+j] += scales[ai] * sum
					}
				}
			}
			if adapted {
				changed++
			}
			// One step of the stored type: float32's, or F16's 2^-10 relative.
			step := math.Pow(2, -23)
			if info.Type == gguf.TypeF16 {
				step = math.Pow(2, -10)
			}
			for i := range got {
				tol := math.Abs(ref[i])*step*0.5001 + 3e-8
				if math.Abs(float64(got[i])-ref[i]) > tol {
					t.Fatalf("%s: %s[%d] = %g, float64 reference %g", base, info.Name, i, got[i], ref[i])
				}
			}
		}
		assert.Equal(t, 5*7+2, changed)
		bf.Close()
		mf.Close()
	}
}

// TestMergeQuantizedBase: a Q8_0 base keeps Q8_0 for every weight; adapted
// weights are the float64 sum quantized again, so they differ from the
// reference by Q8_0's rounding only, while the update itself is far larger.
func TestMergeQuantizedBase(t *testing.T) {
	f32 := initModel(t, factory.Spec{Arch: "llama", Embd: 64, Layers: 1, Heads: 4, FF: 128, VocabSize: 100, Seed: 3})
	base := filepath.Join(t.TempDir(), "q8.gguf")
	_, err := quant.QuantizeModel(context.Background(), f32, base, quant.Options{Type: quant.FileTypeQ8_0, Pure: true})
	require.NoError(t, err)
	a := writeAdapter(t, base, adapterSpec{targets: []string{"attn_v.weight"}, rank: 4, alpha: 4, seed: 9, stdB: 0.02})
	merged := merge(t, base, "", export.AdapterScale{Path: a, Scale: 1})

	bf, err := gguf.Open(base)
	require.NoError(t, err)
	defer bf.Close()
	mf, err := gguf.Open(merged)
	require.NoError(t, err)
	defer mf.Close()
	af, err := gguf.Open(a)
	require.NoError(t, err)
	defer af.Close()
	for _, info := range bf.Tensors {
		out, _ := mf.Tensor(info.Name)
		assert.Equal(t, info.Type, out.Type, info.Name)
	}
	name := "blk.0.attn_v.weight"
	w, got := tensorF32(t, bf, name), tensorF32(t, mf, name)
	A, B := tensorF32(t, af, name+".lora_a"), tensorF32(t, af, name+".lora_b")
	const r, cols = 4, 64
	ref := make([]float32, len(w))
	for i := range len(w) / cols {
		for j := range cols {
			var s float64
			for k := range r {
				s += float64(B[i*r+k]) * float64(A[k*cols+j])
			}
			ref[i*cols+j] = float32(float64(w[i*cols+j]) + s)
		}
	}
	requant, err := quant.RoundTrip(ggml.TypeQ8_0, ref, cols)
	require.NoError(t, err)
	errGot, err := quant.MeasureError(ref, got)
	require.NoError(t, err)
	errQ8, err := quant.MeasureError(ref, requant)
	require.NoError(t, err)
	errDelta, err := quant.MeasureError(ref, w)
	require.NoError(t, err)
	t.Logf("relative RMS vs float64 merge: ours %.2e, Q8_0 of the reference %.2e; the update itself %.2e", errGot.RelRMS, errQ8.RelRMS, errDelta.RelRMS)
	assert.InDelta(t, errQ8.RelRMS, errGot.RelRMS, 0.05*errQ8.RelRMS)
	assert.Greater(t, errDelta.RelRMS, 10*errGot.RelRMS)
}

// TestMergeZeroScaleIsLlamaQuantize: with scale 0 a merge to q4_k only
// requantizes, so every tensor (order, type, bytes) must equal what
// llama-quantize writes for Q4_K_M: the --type rules are llama-quantize's.
func TestMergeZeroScaleIsLlamaQuantize(t *testing.T) {
	llamaQuantize := tool(t, "llama-quantize")
	base := initModel(t, factory.Spec{Arch: "llama", Embd: 256, Layers: 2, Heads: 4, HeadsKV: 2, FF: 512, VocabSize: 256, Type: gguf.TypeF16, Seed: 8})
	a := writeAdapter(t, base, adapterSpec{targets: allTargets, rank: 4, alpha: 8, seed: 10, stdB: 0.05})
	ours := merge(t, base, "q4_k", export.AdapterScale{Path: a, Scale: 0})
	theirs := filepath.Join(t.TempDir(), "q4_k_m.gguf")
	testenv.Run(t, llamaQuantize, base, theirs, "Q4_K_M", "1")

	of, err := gguf.Open(ours)
	require.NoError(t, err)
	defer of.Close()
	tf, err := gguf.Open(theirs)
	require.NoError(t, err)
	defer tf.Close()
	require.Equal(t, len(tf.Tensors), len(of.Tensors))
	for i, want := range tf.Tensors {
		got := of.Tensors[i]
		require.Equal(t, want.Name, got.Name, "tensor %d", i)
		assert.Equal(t, want.Type, got.Type, want.Name)
		x, err := of.Data(got.Name)
		require.NoError(t, err)
		y, err := tf.Data(want.Name)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(x, y), "%s: bytes differ from llama-quantize's", want.Name)
	}
	ft, err := of.Meta.Uint32("general.file_type")
	require.NoError(t, err)
	assert.Equal(t, uint32(quant.FileTypeQ4_K_M), ft)
}

// TestMergeCancel: cancelling mid-merge returns the context's error and
// leaves no output file behind.
func TestMergeCancel(t *testing.T) {
	base := testenv.Stories(t)
	a := writeAdapter(t, base, adapterSpec{targets: allTargets, rank: 2, alpha: 2, seed: 1, stdB: 0.01})
	out := filepath.Join(t.TempDir(), "merged.gguf")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	_, err := export.Merge(ctx, export.MergeOptions{Base: base, Adapters: []export.AdapterScale{{Path: a, Scale: 1}}, Out: out,
		Progress: func(export.Progress) {
			calls++
			cancel()
		}})
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, calls)
	assert.NoFileExists(t, out)
	left, err := filepath.Glob(filepath.Join(filepath.Dir(out), "*"))
	require.NoError(t, err)
	assert.Empty(t, left, "no temporary file is left")
}
