package export_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/export"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/safetensors"
)

// This file checks an exported PEFT adapter end to end: a float64 forward
// pass written here the way transformers' LlamaForCausalLM computes
// (Hugging Face weight layout, rotate_half RoPE) with PEFT's LoRA (scale
// lora_alpha/r, read from adapter_config.json) must give the logits llama.cpp
// computes for the GGUF model with the GGUF adapter (--lora). The HF weights
// are the GGUF ones with llama.cpp's converter permutation undone.

// converterUnpermute undoes LlamaModel.permute: GGUF row h·D + 2·half + two
// came from HF row h·D + two·D/2 + half.
func converterUnpermute(w [][]float64, heads int) [][]float64 {
	d := len(w) / heads
	out := make([][]float64, len(w))
	for h := range heads {
		for two := range 2 {
			for half := range d / 2 {
				out[h*d+two*(d/2)+half] = w[h*d+half*2+two]
			}
		}
	}
	return out
}

// hfLinear is an nn.Linear weight with an optional PEFT LoRA.
type hfLinear struct {
	w, a, b [][]float64 // w [out][in], a [r][in], b [out][r]
	scale   float64
}

func (l hfLinear) apply(x []float64) []float64 {
	out := make([]float64, len(l.w))
	for i, row := range l.w {
		for j, v := range row {
			out[i] += v * x[j]
		}
	}
	if l.a != nil {
		ax := make([]float64, len(l.a))
		for k, row := range l.a {
			for j, v := range row {
				ax[k] += v * x[j]
			}
		}
		for i, row := range l.b {
			for k, v := range row {
				out[i] += l.scale * v * ax[k]
			}
		}
	}
	return out
}

type hfLlama struct {
	embd       [][]float64
	layers     []map[string]hfLinear
	attnNorm   [][]float64
	ffnNorm    [][]float64
	outNorm    []float64
	lmHead     hfLinear
	nHead, nKV int
	eps, theta float64
}

func rmsNorm(x, w []float64, eps float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * r * w[i]
	}
	return out
}

// rotateHalf applies transformers' RoPE to one head at position pos.
func rotateHalf(x []float64, pos int, theta float64) {
	d := len(x)
	for i := range d / 2 {
		th := float64(pos) * math.Pow(theta, -2*float64(i)/float64(d))
		a, b := x[i], x[i+d/2]
		x[i], x[i+d/2] = a*math.Cos(th)-b*math.Sin(th), a*math.Sin(th)+b*math.Cos(th)
	}
}

// forward returns the logits of every position.
func (m *hfLlama) forward(tokens []int32) [][]float64 {
	n := len(tokens)
	xs := make([][]float64, n)
	for t, tok := range tokens {
		xs[t] = append([]float64(nil), m.embd[tok]...)
	}
	for l, L := range m.layers {
		qs, ks, vs := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for t := range n {
			h := rmsNorm(xs[t], m.attnNorm[l], m.eps)
			qs[t], ks[t], vs[t] = L["q_proj"].apply(h), L["k_proj"].apply(h), L["v_proj"].apply(h)
		}
		d := len(qs[0]) / m.nHead
		for t := range n {
			for h := range m.nHead {
				rotateHalf(qs[t][h*d:(h+1)*d], t, m.theta)
			}
			for h := range m.nKV {
				rotateHalf(ks[t][h*d:(h+1)*d], t, m.theta)
			}
		}
		for t := range n {
			att := make([]float64, m.nHead*d)
			for h := range m.nHead {
				kv := h / (m.nHead / m.nKV)
				sc := make([]float64, t+1)
				mx := math.Inf(-1)
				for u := 0; u <= t; u++ {
					for i := range d {
						sc[u] += qs[t][h*d+i] * ks[u][kv*d+i]
					}
					sc[u] /= math.Sqrt(float64(d))
					mx = math.Max(mx, sc[u])
				}
				var z float64
				for u := range sc {
					sc[u] = math.Exp(sc[u] - mx)
					z += sc[u]
				}
				for u := range sc {
					for i := range d {
						att[h*d+i] += sc[u] / z * vs[u][kv*d+i]
					}
				}
			}
			o := L["o_proj"].apply(att)
			for i := range xs[t] {
				xs[t][i] += o[i]
			}
			h := rmsNorm(xs[t], m.ffnNorm[l], m.eps)
			g, up := L["gate_proj"].apply(h), L["up_proj"].apply(h)
			for i := range g {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * up[i]
			}
			down := L["down_proj"].apply(g)
			for i := range xs[t] {
				xs[t][i] += down[i]
			}
		}
	}
	out := make([][]float64, n)
	for t := range n {
		out[t] = m.lmHead.apply(rmsNorm(xs[t], m.outNorm, m.eps))
	}
	return out
}

// loadHFLlama builds the HF model from a llama GGUF and a PEFT directory.
func loadHFLlama(t *testing.T, base, peftDir string) *hfLlama {
	t.Helper()
	f, err := gguf.Open(base)
	require.NoError(t, err)
	defer f.Close()
	mat := func(name string) [][]float64 {
		info, ok := f.Tensor(name)
		require.True(t, ok, name)
		return rowsOf(tensorF32(t, f, name), int(info.Dims[0]))
	}
	vec := func(name string) []float64 { return mat(name)[0] }
	nLayer, err := f.Meta.Int("llama.block_count")
	require.NoError(t, err)
	nHead, err := f.Meta.Int("llama.attention.head_count")
	require.NoError(t, err)
	nKV, err := f.Meta.Int("llama.attention.head_count_kv")
	require.NoError(t, err)
	eps, err := f.Meta.Float("llama.attention.layer_norm_rms_epsilon")
	require.NoError(t, err)
	theta := 10000.0
	if v, err := f.Meta.Float("llama.rope.freq_base"); err == nil {
		theta = v
	}

	var cfg struct {
		R         int     `json:"r"`
		LoraAlpha float64 `json:"lora_alpha"`
	}
	raw, err := os.ReadFile(filepath.Join(peftDir, export.PEFTConfigFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &cfg))
	sf, err := safetensors.Open(filepath.Join(peftDir, export.PEFTWeightsFile))
	require.NoError(t, err)
	defer sf.Close()
	used := 0
	lora := func(path string, w [][]float64) hfLinear {
		key := "base_model.model." + path
		if _, ok := sf.Tensor(key + ".lora_A.weight"); !ok {
			return hfLinear{w: w}
		}
		a, err := sf.Float32s(key + ".lora_A.weight")
		require.NoError(t, err)
		b, err := sf.Float32s(key + ".lora_B.weight")
		require.NoError(t, err)
		ai, _ := sf.Tensor(key + ".lora_A.weight")
		used += 2
		return hfLinear{w: w, a: rowsOf(a, len(w[0])), b: rowsOf(b, int(ai.Shape[0])), scale: cfg.LoraAlpha / float64(cfg.R)}
	}

	m := &hfLlama{embd: mat("token_embd.weight"), outNorm: vec("output_norm.weight"), nHead: int(nHead), nKV: int(nKV), eps: eps, theta: theta}
	for l := range int(nLayer) {
		p := func(s string) string { return "blk." + strconv.Itoa(l) + "." + s + ".weight" }
		hf := "model.layers." + strconv.Itoa(l) + "."
		m.attnNorm = append(m.attnNorm, vec(p("attn_norm")))
		m.ffnNorm = append(m.ffnNorm, vec(p("ffn_norm")))
		m.layers = append(m.layers, map[string]hfLinear{
			"q_proj":    lora(hf+"self_attn.q_proj", converterUnpermute(mat(p("attn_q")), int(nHead))),
			"k_proj":    lora(hf+"self_attn.k_proj", converterUnpermute(mat(p("attn_k")), int(nKV))),
			"v_proj":    lora(hf+"self_attn.v_proj", mat(p("attn_v"))),
			"o_proj":    lora(hf+"self_attn.o_proj", mat(p("attn_output"))),
			"gate_proj": lora(hf+"mlp.gate_proj", mat(p("ffn_gate"))),
			"up_proj":   lora(hf+"mlp.up_proj", mat(p("ffn_up"))),
			"down_proj": lora(hf+"mlp.down_proj", mat(p("ffn_down"))),
		})
	}
	m.lmHead = lora("lm_head", mat("output.weight"))
	require.Equal(t, len(sf.Tensors), used, "every PEFT tensor is used by the forward pass")
	return m
}

// TestPEFTMatchesLlamaCppForward: stories260K (llama, 8 heads, 4 KV heads)
// with a random adapter on every projection and the output; the float64 HF
// + PEFT forward of the exported adapter against libllama with the GGUF one.
func TestPEFTMatchesLlamaCppForward(t *testing.T) {
	base := testenv.Stories(t)
	a := writeAdapter(t, base, adapterSpec{targets: allTargets[:7], rank: 8, alpha: 16, seed: 21, stdB: 0.01})
	dir := filepath.Join(t.TempDir(), "peft")
	sum, err := export.ExportPEFT(export.PEFTOptions{Adapter: a, Base: base, Dir: dir})
	require.NoError(t, err)
	require.Equal(t, 10, sum.Permuted)

	ref := newLibllama(t, base)
	text := "Once upon a time, there was a little girl"
	tokens, err := ref.m.Tokenize(text, true, false)
	require.NoError(t, err)
	plain := ref.logits(t, text)
	ref.withAdapters(t, []string{a}, []float32{1})
	want := ref.logits(t, text)
	moved, _ := maxAbsDiff(plain, want)
	require.Greater(t, moved, 0.5, "the adapter must change the logits for the comparison to mean anything")

	hf := loadHFLlama(t, base, dir)
	flat := func(rows [][]float64) []float32 {
		var out []float32
		for _, r := range rows {
			for _, v := range r {
				out = append(out, float32(v))
			}
		}
		return out
	}
	got := flat(hf.forward(tokens))
	d, rng := maxAbsDiff(got, want)
	t.Logf("%d tokens: adapter moves llama.cpp's logits by up to %.3f; max |HF+PEFT (float64) - llama.cpp+--lora| = %.2e of the range %.1f", len(tokens), moved, d/rng, rng)
	// llama.cpp computes in float32 with an F16 KV cache: 1e-3 of the range
	// is far below what a wrong module, scale or row order gives (the control).
	assert.Less(t, d, 1e-3*rng)

	// Control: the same forward with the q and k lora_B rows left in GGUF's
	// order must miss by far more.
	for _, L := range hf.layers {
		for _, mod := range []string{"q_proj", "k_proj"} {
			lin := L[mod]
			heads := hf.nHead
			if mod == "k_proj" {
				heads = hf.nKV
			}
			lin.b = converterPermute(lin.b, heads)
			L[mod] = lin
		}
	}
	wrong := flat(hf.forward(tokens))
	dw, _ := maxAbsDiff(wrong, want)
	t.Logf("control, lora_B rows not un-permuted: %.2e of the range", dw/rng)
	assert.Greater(t, dw, 10*d)
	assert.Greater(t, dw, 1e-2*rng)
}
