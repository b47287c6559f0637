package export_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/export"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/safetensors"
)

// The permutation of q and k rows is checked through what it is for: with
// the converter's row order, ggml's RoPE (rotating adjacent pairs) gives the
// attention scores that transformers' rotate_half RoPE (rotating the two
// halves of a head) gives on the original rows. Everything below is float64
// and written from those two definitions, not from the package's code.

const (
	ropeBase = 10000.0
	nEmbd    = 64
	nHead    = 4
	nHeadKV  = 2
	headDim  = nEmbd / nHead
)

var permSpec = peftSpecs["llama"] // 64 wide, 4 heads, 2 KV heads: head dim 16

// ropeAdjacent is ggml's LLAMA_ROPE_TYPE_NORM: pairs (2i, 2i+1) of each head.
func ropeAdjacent(x []float64, pos int) []float64 {
	out := make([]float64, len(x))
	for i := range headDim / 2 {
		th := float64(pos) * math.Pow(ropeBase, -2*float64(i)/headDim)
		a, b := x[2*i], x[2*i+1]
		out[2*i], out[2*i+1] = a*math.Cos(th)-b*math.Sin(th), a*math.Sin(th)+b*math.Cos(th)
	}
	return out
}

// ropeHalves is transformers' rotate_half RoPE: pairs (i, i + D/2).
func ropeHalves(x []float64, pos int) []float64 {
	out := make([]float64, len(x))
	h := headDim / 2
	for i := range h {
		th := float64(pos) * math.Pow(ropeBase, -2*float64(i)/headDim)
		a, b := x[i], x[i+h]
		out[i], out[i+h] = a*math.Cos(th)-b*math.Sin(th), a*math.Sin(th)+b*math.Cos(th)
	}
	return out
}

// converterPermute is llama.cpp's LlamaModel.permute on a row-major matrix:
// reshape(heads, 2, D/2, cols).swapaxes(1, 2).reshape(rows, cols).
func converterPermute(w [][]float64, heads int) [][]float64 {
	d := len(w) / heads
	out := make([][]float64, len(w))
	for h := range heads {
		for two := range 2 {
			for half := range d / 2 {
				// source index (h, two, half) lands at (h, half, two)
				out[h*d+half*2+two] = w[h*d+two*(d/2)+half]
			}
		}
	}
	return out
}

// proj is a projection W + s·B·A: W rows×in, B rows×r, A r×in.
type proj struct {
	w, b, a [][]float64
	s       float64
}

func (p proj) apply(x []float64) []float64 {
	ax := make([]float64, len(p.a))
	for k, row := range p.a {
		for j, v := range row {
			ax[k] += v * x[j]
		}
	}
	out := make([]float64, len(p.w))
	for i, row := range p.w {
		for j, v := range row {
			out[i] += v * x[j]
		}
		for k, v := range p.b[i] {
			out[i] += p.s * v * ax[k]
		}
	}
	return out
}

// scores returns every q-head × position × position attention score.
func scores(q, k proj, rope func([]float64, int) []float64, xs [][]float64, pos []int) []float64 {
	var out []float64
	for h := range nHead {
		kv := h / (nHead / nHeadKV)
		for t1, x1 := range xs {
			qh := rope(q.apply(x1)[h*headDim:(h+1)*headDim], pos[t1])
			for t2, x2 := range xs {
				kh := rope(k.apply(x2)[kv*headDim:(kv+1)*headDim], pos[t2])
				var s float64
				for i := range qh {
					s += qh[i] * kh[i]
				}
				out = append(out, s)
			}
		}
	}
	return out
}

func randMat(r *rand.Rand, rows, cols int) [][]float64 {
	m := make([][]float64, rows)
	for i := range m {
		m[i] = make([]float64, cols)
		for j := range m[i] {
			m[i][j] = r.NormFloat64()
		}
	}
	return m
}

// rowsOf reads a row-major float32 tensor of `cols` columns as float64 rows.
func rowsOf(x []float32, cols int) [][]float64 {
	m := make([][]float64, len(x)/cols)
	for i := range m {
		m[i] = make([]float64, cols)
		for j := range cols {
			m[i][j] = float64(x[i*cols+j])
		}
	}
	return m
}

func maxRelDiff(a, b []float64) float64 {
	var d, scale float64
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
		scale = math.Max(scale, math.Abs(b[i]))
	}
	return d / scale
}

// checkScores compares HF-side and GGUF-side attention scores for the same
// base weights (HF rows; GGUF rows permuted by the converter) and adapters.
func checkScores(t *testing.T, r *rand.Rand, hfQB, hfKB, ggQB, ggKB, qA, kA [][]float64) {
	t.Helper()
	wq, wk := randMat(r, nEmbd, nEmbd), randMat(r, nHeadKV*headDim, nEmbd)
	xs := randMat(r, 3, nEmbd)
	pos := []int{0, 5, 17}
	const s = 0.7
	hf := scores(proj{wq, hfQB, qA, s}, proj{wk, hfKB, kA, s}, ropeHalves, xs, pos)
	gg := scores(proj{converterPermute(wq, nHead), ggQB, qA, s}, proj{converterPermute(wk, nHeadKV), ggKB, kA, s}, ropeAdjacent, xs, pos)
	d := maxRelDiff(gg, hf)
	assert.Less(t, d, 1e-12, "attention scores, GGUF layout vs HF layout")

	// Controls: the base weights alone agree (the reference is right), and
	// a B left in the other layout does not (the test can fail).
	hf0 := scores(proj{wq, hfQB, qA, 0}, proj{wk, hfKB, kA, 0}, ropeHalves, xs, pos)
	gg0 := scores(proj{converterPermute(wq, nHead), ggQB, qA, 0}, proj{converterPermute(wk, nHeadKV), ggKB, kA, 0}, ropeAdjacent, xs, pos)
	assert.Less(t, maxRelDiff(gg0, hf0), 1e-12, "base weights alone")
	wrong := scores(proj{converterPermute(wq, nHead), hfQB, qA, s}, proj{converterPermute(wk, nHeadKV), hfKB, kA, s}, ropeAdjacent, xs, pos)
	assert.Greater(t, maxRelDiff(wrong, hf), 1e-3, "an unpermuted lora_B must give other scores")
	t.Logf("max relative score difference: %.1e (unpermuted B: %.1e)", d, maxRelDiff(wrong, hf))
}

// TestPEFTExportPermutation: lora_B exported from GGUF to PEFT gives, on the
// HF layout with rotate_half RoPE, the attention scores the GGUF adapter
// gives on the GGUF layout with ggml's RoPE.
func TestPEFTExportPermutation(t *testing.T) {
	base := initModel(t, permSpec)
	a := writeAdapter(t, base, adapterSpec{targets: []string{"attn_q.weight", "attn_k.weight"}, rank: 3, alpha: 3, seed: 5, stdB: 1})
	dir := filepath.Join(t.TempDir(), "peft")
	_, err := export.ExportPEFT(export.PEFTOptions{Adapter: a, Base: base, Dir: dir})
	require.NoError(t, err)
	sf, err := safetensors.Open(filepath.Join(dir, export.PEFTWeightsFile))
	require.NoError(t, err)
	defer sf.Close()
	f, err := gguf.Open(a)
	require.NoError(t, err)
	defer f.Close()

	hf := func(mod, ab string, cols int) [][]float64 {
		x, err := sf.Float32s("base_model.model.model.layers.1.self_attn." + mod + ".lora_" + ab + ".weight")
		require.NoError(t, err)
		return rowsOf(x, cols)
	}
	gg := func(name string, cols int) [][]float64 { return rowsOf(tensorF32(t, f, name), cols) }
	const r = 3
	qA, kA := gg("blk.1.attn_q.weight.lora_a", nEmbd), gg("blk.1.attn_k.weight.lora_a", nEmbd)
	assert.Equal(t, qA, hf("q_proj", "A", nEmbd), "lora_A is kept as is")
	assert.Equal(t, kA, hf("k_proj", "A", nEmbd), "lora_A is kept as is")
	checkScores(t, rand.New(rand.NewPCG(1, 2)), hf("q_proj", "B", r), hf("k_proj", "B", r),
		gg("blk.1.attn_q.weight.lora_b", r), gg("blk.1.attn_k.weight.lora_b", r), qA, kA)
}

// TestPEFTImportPermutation: a PEFT adapter written here in HF layout and
// imported gives, on the GGUF layout, the scores PEFT's gives on HF's.
func TestPEFTImportPermutation(t *testing.T) {
	base := initModel(t, permSpec)
	rnd := rand.New(rand.NewPCG(3, 4))
	const r = 5
	mats := map[string][][]float64{
		"q_proj.lora_A": randMat(rnd, r, nEmbd), "q_proj.lora_B": randMat(rnd, nEmbd, r),
		"k_proj.lora_A": randMat(rnd, r, nEmbd), "k_proj.lora_B": randMat(rnd, nHeadKV*headDim, r),
	}
	var tensors []safetensors.Tensor
	for _, layer := range []string{"0", "1"} {
		for name, m := range mats {
			var flat []float32
			for _, row := range m {
				for _, v := range row {
					flat = append(flat, float32(v))
				}
			}
			tensors = append(tensors, safetensors.Tensor{Name: "base_model.model.model.layers." + layer + ".self_attn." + name + ".weight",
				DType: safetensors.F32, Shape: []int64{int64(len(m)), int64(len(m[0]))}, Data: safetensors.Float32Bytes(flat)})
		}
	}
	// Round to float32 as stored, so both sides use the same values.
	for name, m := range mats {
		for _, row := range m {
			for j := range row {
				row[j] = float64(float32(row[j]))
			}
		}
		mats[name] = m
	}
	dir := t.TempDir()
	require.NoError(t, safetensors.WriteFile(filepath.Join(dir, export.PEFTWeightsFile), tensors, map[string]string{"format": "pt"}))
	cfg, err := json.Marshal(map[string]any{"peft_type": "LORA", "r": r, "lora_alpha": 10, "target_modules": []string{"q_proj", "k_proj"},
		"bias": "none", "task_type": "CAUSAL_LM", "fan_in_fan_out": false, "use_rslora": false})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, export.PEFTConfigFile), cfg, 0o644))

	out := filepath.Join(t.TempDir(), "imported.gguf")
	sum, err := export.ImportPEFT(export.ImportOptions{Dir: dir, Base: base, Out: out})
	require.NoError(t, err)
	assert.Equal(t, 4, sum.Permuted)
	f, err := gguf.Open(out)
	require.NoError(t, err)
	defer f.Close()
	alpha, err := f.Meta.Float32("adapter.lora.alpha")
	require.NoError(t, err)
	assert.Equal(t, float32(10), alpha)
	gg := func(name string, cols int) [][]float64 { return rowsOf(tensorF32(t, f, name), cols) }
	assert.Equal(t, mats["q_proj.lora_A"], gg("blk.0.attn_q.weight.lora_a", nEmbd))
	checkScores(t, rand.New(rand.NewPCG(5, 6)), mats["q_proj.lora_B"], mats["k_proj.lora_B"],
		gg("blk.0.attn_q.weight.lora_b", r), gg("blk.0.attn_k.weight.lora_b", r), mats["q_proj.lora_A"], mats["k_proj.lora_A"])
}
