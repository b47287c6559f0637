package trainer

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/ecotune/ecotune/ggml"
)

// LoRA defaults, used where a LoRAConfig field is zero.
const (
	DefaultLoRARank  = 8
	DefaultLoRAAlpha = 16
)

// DefaultTargets are the modules LoRA adapts when LoRAConfig.Targets is empty: the
// attention projections, as the original LoRA paper and PEFT's Llama default do.
var DefaultTargets = []string{"attn_q", "attn_k", "attn_v", "attn_output"}

// hfTargetNames maps Hugging Face module names to GGUF ones; Arch.HFNames adds and
// overrides names per architecture.
var hfTargetNames = map[string]string{
	"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "qkv_proj": "attn_qkv", "o_proj": "attn_output",
	"gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
}

// LoRAConfig describes the adapter to train.
type LoRAConfig struct {
	Rank    int      // r; DefaultLoRARank if 0
	Alpha   float32  // α; DefaultLoRAAlpha if 0
	Dropout float32  // dropout on the adapter's input during training, [0, 1)
	RSLoRA  bool     // scale by α/√r (rank-stabilised LoRA) instead of α/r
	Targets []string // module names, HF (q_proj) or GGUF (attn_q) style, or "all"; DefaultTargets if empty
	Seed    uint64   // seeds A's Kaiming-uniform initialisation
	// TaskName, if set, is written as adapter.lora.task_name, the label llama.cpp's
	// server lists the adapter under.
	TaskName string `json:",omitempty"`
}

func (c LoRAConfig) withDefaults() LoRAConfig {
	if c.Rank == 0 {
		c.Rank = DefaultLoRARank
	}
	if c.Alpha == 0 {
		c.Alpha = DefaultLoRAAlpha
	}
	if len(c.Targets) == 0 {
		c.Targets = DefaultTargets
	}
	return c
}

// loraPair is the adapter of one base weight: y += s·B(A·x).
type loraPair struct {
	Base string       // base tensor name, "blk.0.attn_q.weight"
	A    *ggml.Tensor // ne = [n_in, r]
	B    *ggml.Tensor // ne = [r, n_out]
}

// LoRA is a set of trainable low-rank adapters for one Model, in llama.cpp's adapter
// layout. It owns a ggml context and buffer (on the model's weights device); Close it
// before the Model.
type LoRA struct {
	Config LoRAConfig // resolved (defaults filled in, targets in GGUF style)
	Arch   string     // the base model's architecture

	pairs  []*loraPair
	byBase map[string]*loraPair
	ctx    *ggml.Context
	buf    *ggml.Buffer
}

// ResolveTargets turns HF- or GGUF-style module names (or "all") into the GGUF-style
// names arch supports, in block order, or says which name is unknown. A name the
// architecture only has fused into another weight (Phi-3's ffn_gate) becomes that
// weight's name; which of fused or separate Q/K/V a file has is settled by NewLoRA.
func ResolveTargets(arch *Arch, names []string) ([]string, error) {
	supported := arch.loraTargets()
	want := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "all" || n == "all-linear" {
			for _, s := range supported {
				want[s] = true
			}
			continue
		}
		if g, ok := arch.HFNames[n]; ok {
			if g == "" {
				return nil, fmt.Errorf("%s has no module %q (choose from %v or their HF names)", arch.Name, n, supported)
			}
			n = g
		} else if g, ok := hfTargetNames[n]; ok {
			n = g
		}
		if !slices.Contains(supported, n) {
			if f, ok := arch.Fused[n]; ok && slices.Contains(supported, f) {
				n = f
			} else {
				return nil, fmt.Errorf("unknown LoRA target module %q for %s (choose from %v or their HF names)", n, arch.Name, supported)
			}
		}
		want[n] = true
	}
	var out []string
	for _, s := range supported {
		if want[s] {
			out = append(out, s)
		}
	}
	return out, nil
}

// modelTargets narrows arch-level targets to the weights m's file has: a projection
// the file fuses (attn_q in attn_qkv) is adapted through the fused weight, the only
// one llama.cpp's adapter format can name; with "all", absent alternatives are
// dropped; otherwise a target the file lacks is an error.
func modelTargets(m *Model, targets, asked []string) ([]string, error) {
	all := slices.ContainsFunc(asked, func(n string) bool {
		n = strings.TrimSpace(n)
		return n == "all" || n == "all-linear"
	})
	has := func(t string) bool { return m.Weight(blockName(0, t+".weight")) != nil }
	want := map[string]bool{}
	for _, t := range targets {
		switch f := m.Arch.Fused[t]; {
		case has(t):
			want[t] = true
		case all:
		case f != "" && has(f):
			want[f] = true
		default:
			return nil, fmt.Errorf("the model has no %s weight (blk.0.%s.weight) to adapt", t, t)
		}
	}
	var out []string
	for _, s := range m.Arch.loraTargets() {
		if want[s] {
			out = append(out, s)
		}
	}
	return out, nil
}

// NewLoRA makes adapters for m's target modules: A Kaiming-uniform (seeded), B zero, so
// the adapted model starts equal to the base. The caller must Close it.
func NewLoRA(m *Model, cfg LoRAConfig) (l *LoRA, err error) {
	cfg = cfg.withDefaults()
	if cfg.Rank < 1 || cfg.Rank > maxDim {
		return nil, fmt.Errorf("trainer: LoRA rank %d must be positive", cfg.Rank)
	}
	if cfg.Dropout < 0 || cfg.Dropout >= 1 || math.IsNaN(float64(cfg.Dropout)) {
		return nil, fmt.Errorf("trainer: LoRA dropout %g must be in [0, 1)", cfg.Dropout)
	}
	if cfg.Alpha < 0 || math.IsNaN(float64(cfg.Alpha)) || math.IsInf(float64(cfg.Alpha), 0) {
		return nil, fmt.Errorf("trainer: LoRA alpha %g must be a finite number ≥ 0", cfg.Alpha)
	}
	asked := cfg.Targets
	if cfg.Targets, err = ResolveTargets(m.Arch, asked); err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	if cfg.Targets, err = modelTargets(m, cfg.Targets, asked); err != nil {
		return nil, fmt.Errorf("trainer: LoRA: %w", err)
	}
	l = &LoRA{Config: cfg, Arch: m.Arch.Name, byBase: map[string]*loraPair{}}
	defer func() {
		if err != nil {
			l.Close()
			l = nil
		}
	}()
	n := 2 * m.HP.Layers * len(cfg.Targets)
	if l.ctx, err = ggml.NewContext(n+1, 0); err != nil {
		return nil, fmt.Errorf("trainer: LoRA: %w", err)
	}
	err = ggml.Build(func() {
		for layer := 0; layer < m.HP.Layers; layer++ {
			for _, t := range cfg.Targets {
				base := blockName(layer, t+".weight")
				w := m.Weight(base)
				if w == nil {
					continue
				}
				p := &loraPair{Base: base}
				p.A = l.ctx.NewTensor(ggml.TypeF32, w.Ne(0), cfg.Rank).SetName(base + ".lora_a").SetParam()
				p.B = l.ctx.NewTensor(ggml.TypeF32, cfg.Rank, w.Ne(1)).SetName(base + ".lora_b").SetParam()
				l.pairs = append(l.pairs, p)
				l.byBase[base] = p
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("trainer: LoRA: %w", err)
	}
	if len(l.pairs) == 0 {
		return nil, fmt.Errorf("trainer: LoRA: the model has none of the target modules %v", cfg.Targets)
	}
	be := m.cpu
	if m.gpu != nil {
		be = m.gpu
	}
	if l.buf, err = l.ctx.AllocTensors(be); err != nil {
		return nil, fmt.Errorf("trainer: LoRA: %w", err)
	}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x10a))
	for _, p := range l.pairs {
		// PEFT's init: kaiming_uniform_(a=√5) on A [r, in] is U(-1/√in, 1/√in).
		bound := 1 / math.Sqrt(float64(p.A.Ne(0)))
		a := make([]float32, p.A.Elements())
		for i := range a {
			a[i] = float32((2*r.Float64() - 1) * bound)
		}
		if err := p.A.SetF32(a); err != nil {
			return nil, fmt.Errorf("trainer: LoRA init: %w", err)
		}
		if err := p.B.Zero(); err != nil {
			return nil, fmt.Errorf("trainer: LoRA init: %w", err)
		}
	}
	return l, nil
}

// pair returns the adapter of base weight name, or nil (also on a nil LoRA).
func (l *LoRA) pair(name string) *loraPair {
	if l == nil {
		return nil
	}
	return l.byBase[name]
}

// Scale is s in y = W·x + s·B(A·x): α/r, or α/√r with RSLoRA.
func (l *LoRA) Scale() float32 {
	r := float64(l.Config.Rank)
	if l.Config.RSLoRA {
		return float32(float64(l.Config.Alpha) / math.Sqrt(r))
	}
	return float32(float64(l.Config.Alpha) / r)
}

// Params is the number of trainable parameters.
func (l *LoRA) Params() int {
	n := 0
	for _, p := range l.pairs {
		n += p.A.Elements() + p.B.Elements()
	}
	return n
}

// Names lists the adapter's tensor names (<base>.weight.lora_a, <base>.weight.lora_b per adapted weight).
func (l *LoRA) Names() []string {
	var out []string
	for _, p := range l.pairs {
		out = append(out, p.A.Name(), p.B.Name())
	}
	return out
}

func (l *LoRA) tensor(name string) *ggml.Tensor {
	for _, p := range l.pairs {
		if p.A.Name() == name {
			return p.A
		}
		if p.B.Name() == name {
			return p.B
		}
	}
	return nil
}

// Get copies out the values of the adapter tensor name (see Names).
func (l *LoRA) Get(name string) ([]float32, error) {
	t := l.tensor(name)
	if t == nil {
		return nil, fmt.Errorf("trainer: LoRA has no tensor %q", name)
	}
	return t.F32()
}

// Set overwrites the values of the adapter tensor name (see Names).
func (l *LoRA) Set(name string, v []float32) error {
	t := l.tensor(name)
	if t == nil {
		return fmt.Errorf("trainer: LoRA has no tensor %q", name)
	}
	return t.SetF32(v)
}

// params lists the trainable tensors, A then B per adapted weight.
func (l *LoRA) params() []*ggml.Tensor {
	var out []*ggml.Tensor
	for _, p := range l.pairs {
		out = append(out, p.A, p.B)
	}
	return out
}

// Close frees the adapter's memory. Safe to call twice.
func (l *LoRA) Close() error {
	if l == nil {
		return nil
	}
	err := errors.Join(l.buf.Close(), l.ctx.Close())
	l.buf, l.ctx = nil, nil
	return err
}
