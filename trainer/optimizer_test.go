package trainer

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/ggml"
)

// refAdamW is PyTorch's AdamW with clip_grad_norm_ in float64: the reference for the
// optimizer graph.
type refAdamW struct {
	cfg  OptimizerConfig
	m, v [][]float64
	t    int
}

// step updates p given the summed gradient g over targets target tokens.
func (r *refAdamW) step(p, g [][]float64, lr float64, targets int) (norm float64) {
	if r.m == nil {
		for _, x := range p {
			r.m, r.v = append(r.m, make([]float64, len(x))), append(r.v, make([]float64, len(x)))
		}
	}
	for _, x := range g {
		for _, y := range x {
			norm += (y / float64(targets)) * (y / float64(targets))
		}
	}
	norm = math.Sqrt(norm)
	scale := 1 / float64(targets)
	if c := float64(r.cfg.ClipNorm); c > 0 && norm > c {
		scale *= c / (norm + 1e-6)
	}
	r.t++
	b1, b2, eps, wd := float64(r.cfg.Beta1), float64(r.cfg.Beta2), float64(r.cfg.Eps), float64(r.cfg.WeightDecay)
	for i := range p {
		for j := range p[i] {
			gr := g[i][j] * scale
			r.m[i][j] = b1*r.m[i][j] + (1-b1)*gr
			r.v[i][j] = b2*r.v[i][j] + (1-b2)*gr*gr
			mh := r.m[i][j] / (1 - math.Pow(b1, float64(r.t)))
			vh := r.v[i][j] / (1 - math.Pow(b2, float64(r.t)))
			p[i][j] = p[i][j]*(1-lr*wd) - lr*mh/(math.Sqrt(vh)+eps)
		}
	}
	return norm
}

// TestAdamWMatchesReference runs the optimizer graph on given gradients, with
// non-default betas and epsilon, weight decay, and a clip that only some steps reach.
func TestAdamWMatchesReference(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.gguf")
	writeRandomLlama(t, path, ggml.TypeF32, false)
	m, l := loadWithRandomLoRA(t, path, ModelOptions{Threads: 2})
	cfg := OptimizerConfig{Beta1: 0.8, Beta2: 0.95, Eps: 1e-3, WeightDecay: 0.1, ClipNorm: 1}
	params := l.params()[:6]
	opt, err := newAdamW(m, params, cfg)
	require.NoError(t, err)
	defer opt.Close()

	ref := &refAdamW{cfg: cfg}
	var p [][]float64
	for _, x := range params {
		v, err := x.F32()
		require.NoError(t, err)
		p = append(p, f64s(v))
	}
	rng := rand.New(rand.NewPCG(5, 6))
	clipped := 0
	for step, gs := range []float64{0.5, 0.01, 2, 0.02} {
		var g [][]float64
		for i, a := range opt.accs {
			v := make([]float32, len(p[i]))
			for j := range v {
				v[j] = float32(rng.NormFloat64() * gs)
			}
			require.NoError(t, a.SetF32(v))
			g = append(g, f64s(v))
		}
		lr, targets := 1e-2*float64(step+1), 3+step
		want := ref.step(p, g, lr, targets)
		if want > float64(cfg.ClipNorm) {
			clipped++
		}
		norm, err := opt.step(lr, targets)
		require.NoError(t, err)
		assert.InEpsilon(t, want, norm, 1e-5, "step %d: gradient norm", step)
		for i, x := range params {
			got, err := x.F32()
			require.NoError(t, err)
			for j := range got {
				require.InDelta(t, p[i][j], float64(got[j]), 1e-6+1e-5*math.Abs(p[i][j]), "step %d: %s[%d]", step, x.Name(), j)
			}
			acc, err := opt.accs[i].F32()
			require.NoError(t, err)
			assert.Equal(t, make([]float32, len(acc)), acc, "step %d: %s's accumulator is cleared", step, x.Name())
		}
	}
	assert.Equal(t, 2, clipped, "two of the four steps clip")
}

func TestOptimizerConfigValidation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.gguf")
	writeRandomLlama(t, path, ggml.TypeF32, false)
	m, _ := loadWithRandomLoRA(t, path, ModelOptions{Threads: 1})
	for _, o := range []OptimizerConfig{{Beta1: 1}, {Beta2: 1.5}, {Beta1: -0.1}, {Eps: -1e-8}, {Eps: float32(math.NaN())}} {
		c := DefaultConfig()
		c.Optimizer = o
		c.resolve()
		c.resolveSteps(10)
		assert.ErrorContains(t, c.validate(m), "adam", "%+v", o)
	}
	c := DefaultConfig()
	c.Optimizer = OptimizerConfig{Beta1: 0.5, Beta2: 0.9, Eps: 1e-6}
	c.resolveSteps(10)
	assert.NoError(t, c.validate(m))
}

func f64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
