package trainer

import (
	"errors"
	"fmt"
	"math"

	"github.com/ecotune/ecotune/ggml"
)

// AdamW defaults, used where an OptimizerConfig field is zero (WeightDecay 0 is kept).
const (
	DefaultBeta1 = 0.9
	DefaultBeta2 = 0.999
	DefaultEps   = 1e-8
)

// OptimizerConfig are AdamW's settings; the learning rate comes from the Schedule.
type OptimizerConfig struct {
	Beta1, Beta2 float32 // moment decays; DefaultBeta1, DefaultBeta2 if 0
	Eps          float32 // DefaultEps if 0
	WeightDecay  float32 // decoupled weight decay, 0 to 1
	ClipNorm     float32 // clip the global gradient norm to this; 0 disables
}

func (o OptimizerConfig) withDefaults() OptimizerConfig {
	if o.Beta1 == 0 {
		o.Beta1 = DefaultBeta1
	}
	if o.Beta2 == 0 {
		o.Beta2 = DefaultBeta2
	}
	if o.Eps == 0 {
		o.Eps = DefaultEps
	}
	return o
}

// adamW is our own optimizer graph rather than ggml-opt: ggml-opt owns the forward
// graph (one static shape, loss over every output, no masking) and applies its update
// without a way to scale the gradient first, so it can neither clip the global norm nor
// weight micro-batches by their target counts. Here the training graph adds each
// micro-batch's weighted gradient into persistent accumulators; at a step a tiny graph
// computes Σ‖acc‖², Go turns it into one scale (1/Σtargets, times the clip factor), and
// a second graph applies ggml's opt_step_adamw to acc·scale with Go-computed settings.
type adamW struct {
	m      *Model
	cfg    OptimizerConfig
	params []*ggml.Tensor
	accs   []*ggml.Tensor
	mom    []*ggml.Tensor
	vel    []*ggml.Tensor
	hyper  *ggml.Tensor // F32 [7]: lr, β1, β2, ε, wd, 1/(1-β1ᵗ), 1/(1-β2ᵗ)
	gscale *ggml.Tensor // F32 [1]
	state  *ggml.Context
	buf    *ggml.Buffer
	gctx   *ggml.Context
	norm   *ggml.Graph
	sumSq  *ggml.Tensor
	update *ggml.Graph
	t      int // updates applied
}

func newAdamW(m *Model, params []*ggml.Tensor, cfg OptimizerConfig) (o *adamW, err error) {
	cfg = cfg.withDefaults()
	o = &adamW{m: m, cfg: cfg, params: params}
	defer func() {
		if err != nil {
			o.Close()
			o = nil
		}
	}()
	n := len(o.params)
	if o.state, err = ggml.NewContext(3*n+2, 0); err != nil {
		return nil, fmt.Errorf("trainer: optimizer: %w", err)
	}
	if o.gctx, err = ggml.NewContext(8*n+16, 4*n+64); err != nil {
		return nil, fmt.Errorf("trainer: optimizer: %w", err)
	}
	err = ggml.Build(func() {
		for _, p := range o.params {
			ne := p.Shape()
			o.accs = append(o.accs, o.state.NewTensor(ggml.TypeF32, ne...).SetName(p.Name()+".grad"))
			o.mom = append(o.mom, o.state.NewTensor(ggml.TypeF32, ne...).SetName(p.Name()+".m"))
			o.vel = append(o.vel, o.state.NewTensor(ggml.TypeF32, ne...).SetName(p.Name()+".v"))
		}
		o.hyper = o.state.NewTensor(ggml.TypeF32, 7).SetName("adamw_params")
		o.gscale = o.state.NewTensor(ggml.TypeF32, 1).SetName("grad_scale")
	})
	if err != nil {
		return nil, fmt.Errorf("trainer: optimizer: %w", err)
	}
	be := m.cpu
	if m.gpu != nil {
		be = m.gpu
	}
	if o.buf, err = o.state.AllocTensors(be); err != nil {
		return nil, fmt.Errorf("trainer: optimizer state: %w", err)
	}
	if err = o.buf.Clear(0); err != nil {
		return nil, err
	}
	err = ggml.Build(func() {
		c := o.gctx
		o.norm = c.NewGraph(4*n+64, false)
		var sum *ggml.Tensor
		for _, a := range o.accs {
			s := c.Sum(c.Sqr(a))
			if sum == nil {
				sum = s
			} else {
				sum = c.Add(sum, s)
			}
		}
		o.sumSq = sum.SetOutput()
		o.norm.Expand(o.sumSq)
		o.update = c.NewGraph(4*n+64, false)
		for i, p := range o.params {
			o.update.Expand(c.AdamWStep(p, c.Mul(o.accs[i], o.gscale), o.mom[i], o.vel[i], o.hyper))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("trainer: optimizer graphs: %w", err)
	}
	return o, nil
}

// zeroGrads clears the gradient accumulators.
func (o *adamW) zeroGrads() error {
	for _, a := range o.accs {
		if err := a.Zero(); err != nil {
			return err
		}
	}
	return nil
}

// gradNorm is the global L2 norm of the accumulated gradient divided by targets.
func (o *adamW) gradNorm(targets int) (float64, error) {
	if err := o.m.sched.Compute(o.norm); err != nil {
		return 0, fmt.Errorf("trainer: gradient norm: %w", err)
	}
	v, err := o.sumSq.F32()
	if err != nil {
		return 0, err
	}
	return math.Sqrt(float64(v[0])) / float64(targets), nil
}

// step applies one AdamW update with learning rate lr to the gradient accumulated over
// targets target tokens, clipping its global norm, and clears the accumulators. It
// returns the gradient norm before clipping.
func (o *adamW) step(lr float64, targets int) (float64, error) {
	if targets < 1 {
		return 0, fmt.Errorf("trainer: optimizer step without target tokens")
	}
	norm, err := o.gradNorm(targets)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, fmt.Errorf("trainer: %w: gradient norm is %g", ErrNonFinite, norm)
	}
	scale := 1 / float64(targets)
	if c := float64(o.cfg.ClipNorm); c > 0 && norm > c {
		scale *= c / (norm + 1e-6)
	}
	o.t++
	b1, b2 := float64(o.cfg.Beta1), float64(o.cfg.Beta2)
	hyper := []float32{float32(lr), o.cfg.Beta1, o.cfg.Beta2, o.cfg.Eps, o.cfg.WeightDecay,
		float32(1 / (1 - math.Pow(b1, float64(o.t)))), float32(1 / (1 - math.Pow(b2, float64(o.t))))}
	if err := o.hyper.SetF32(hyper); err != nil {
		return 0, err
	}
	if err := o.gscale.SetF32([]float32{float32(scale)}); err != nil {
		return 0, err
	}
	if err := o.m.sched.Compute(o.update); err != nil {
		return 0, fmt.Errorf("trainer: optimizer update: %w", err)
	}
	return norm, o.zeroGrads()
}

// Close frees the optimizer state and graphs. Safe to call twice.
func (o *adamW) Close() error {
	if o == nil {
		return nil
	}
	err := errors.Join(o.buf.Close(), o.state.Close(), o.gctx.Close())
	o.buf, o.state, o.gctx = nil, nil, nil
	return err
}
