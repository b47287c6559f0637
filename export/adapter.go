package export

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/ecotune/ecotune/gguf"
)

// Adapter is a LoRA adapter GGUF in llama.cpp's format, opened and validated:
// general.type "adapter", adapter.type "lora", an architecture, an optional
// f32 adapter.lora.alpha, and complete <base>.lora_a / <base>.lora_b pairs.
type Adapter struct {
	Path  string
	File  *gguf.File // open until Close
	Arch  string     // general.architecture
	Alpha float32    // adapter.lora.alpha; 0 (or absent) means the scale is the user's alone
	Pairs []Pair     // sorted by base tensor name
}

// Pair is one adapted tensor: its base tensor's name and the infos of its
// lora_a (ne = [n_in, r]) and lora_b (ne = [r, n_out]) tensors. For the token
// embedding llama.cpp stores the pair flipped: lora_a ne = [r, n_vocab],
// lora_b ne = [r, n_embd].
type Pair struct {
	Base string
	A, B gguf.TensorInfo
}

// Rank is the pair's rank as llama.cpp reads it: ne[0] of lora_b.
func (p Pair) Rank() int64 { return p.B.Dims[0] }

// IsEmbedding reports whether the pair adapts the token embedding, whose
// lora_a and lora_b llama.cpp stores flipped (see Pair).
func (p Pair) IsEmbedding() bool { return strings.HasSuffix(p.Base, "token_embd.weight") }

// Scale returns the factor llama.cpp multiplies the pair's B·A by when the
// adapter is applied with the user's scale: user·alpha/rank, or user alone
// when alpha is 0.
func (a *Adapter) Scale(p Pair, user float64) float64 {
	if a.Alpha == 0 {
		return user
	}
	return user * float64(a.Alpha) / float64(p.Rank())
}

// Pair returns the pair adapting the named base tensor.
func (a *Adapter) Pair(base string) (Pair, bool) {
	i, ok := slices.BinarySearchFunc(a.Pairs, base, func(p Pair, name string) int { return strings.Compare(p.Base, name) })
	if !ok {
		return Pair{}, false
	}
	return a.Pairs[i], true
}

// Rank returns the rank shared by every pair, or 0 when pairs differ.
func (a *Adapter) Rank() int64 {
	r := int64(0)
	for _, p := range a.Pairs {
		if r != 0 && p.Rank() != r {
			return 0
		}
		r = p.Rank()
	}
	return r
}

// Close closes the adapter's file. It is idempotent.
func (a *Adapter) Close() error {
	if a == nil {
		return nil
	}
	return a.File.Close()
}

// OpenAdapter opens and validates the adapter GGUF at path. The caller must Close it.
func OpenAdapter(path string) (*Adapter, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("export: adapter: %w", err)
	}
	a, err := readAdapter(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

// readAdapter validates f's metadata and tensor pairs; the checks mirror
// llama_adapter_lora_init, which aborts on a wrong metadata type.
func readAdapter(path string, f *gguf.File) (*Adapter, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("export: adapter %s: %s", path, fmt.Sprintf(format, args...))
	}
	a := &Adapter{Path: path, File: f}
	want := map[string]string{"general.type": "adapter", "adapter.type": "lora"}
	for _, key := range []string{"general.type", "adapter.type"} {
		v, err := f.Meta.String(key)
		if err != nil {
			return nil, bad("%v (is it a LoRA adapter GGUF?)", err)
		}
		if v != want[key] {
			return nil, bad("%s is %q, want %q (is it a model rather than a LoRA adapter?)", key, v, want[key])
		}
	}
	arch, err := f.Meta.String("general.architecture")
	if err != nil {
		return nil, bad("%v", err)
	}
	a.Arch = arch
	if f.Meta.Has("adapter.lora.alpha") {
		if a.Alpha, err = f.Meta.Float32("adapter.lora.alpha"); err != nil {
			return nil, bad("%v", err)
		}
		if x := float64(a.Alpha); math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, bad("adapter.lora.alpha is %v, want a finite number", x)
		}
	}

	pairs := map[string]*Pair{}
	for _, t := range f.Tensors {
		var base string
		var isA bool
		switch {
		case strings.HasSuffix(t.Name, ".lora_a"):
			base, isA = strings.TrimSuffix(t.Name, ".lora_a"), true
		case strings.HasSuffix(t.Name, ".lora_b"):
			base = strings.TrimSuffix(t.Name, ".lora_b")
		case strings.HasSuffix(t.Name, "_norm.weight"):
			continue // llama.cpp ignores norm vectors in adapters, and so do we
		default:
			return nil, bad("tensor %q is neither a .lora_a nor a .lora_b", t.Name)
		}
		if len(t.Dims) != 2 {
			return nil, bad("tensor %q has %d dimensions %v, want 2", t.Name, len(t.Dims), t.Dims)
		}
		p := pairs[base]
		if p == nil {
			p = &Pair{Base: base}
			pairs[base] = p
		}
		if isA {
			p.A = t
		} else {
			p.B = t
		}
	}
	if len(pairs) == 0 {
		return nil, bad("no lora_a/lora_b tensor pairs")
	}
	for _, p := range pairs {
		if p.A.Name == "" || p.B.Name == "" {
			return nil, bad("tensor pair for %q lacks its lora_a or lora_b", p.Base)
		}
		for _, t := range []gguf.TensorInfo{p.A, p.B} {
			if t.Type != gguf.TypeF32 && t.Type != gguf.TypeF16 && t.Type != gguf.TypeBF16 && !t.Type.IsQuantized() {
				return nil, bad("tensor %q has type %s; LoRA tensors are F32, F16 or BF16", t.Name, t.Type)
			}
		}
		if p.A.Type.IsQuantized() || p.B.Type.IsQuantized() {
			return nil, bad("tensor pair for %q is quantized (%s, %s); use an F32, F16 or BF16 adapter", p.Base, p.A.Type, p.B.Type)
		}
		if p.IsEmbedding() {
			if p.A.Dims[0] != p.B.Dims[0] {
				return nil, bad("token embedding pair %q: lora_a rank %d differs from lora_b rank %d", p.Base, p.A.Dims[0], p.B.Dims[0])
			}
		} else if p.A.Dims[1] != p.B.Dims[0] {
			return nil, bad("tensor pair %q: lora_a %v and lora_b %v disagree on the rank (ne[1] of lora_a must equal ne[0] of lora_b)", p.Base, p.A.Dims, p.B.Dims)
		}
		a.Pairs = append(a.Pairs, *p)
	}
	slices.SortFunc(a.Pairs, func(x, y Pair) int { return strings.Compare(x.Base, y.Base) })
	return a, nil
}

// CheckBase checks the adapter against a base model as llama.cpp does when it
// loads the adapter: the same architecture, and every pair naming a 2-D base
// tensor whose shape it fits (lora_a ne = [n_in, r], lora_b ne = [r, n_out]).
func (a *Adapter) CheckBase(base *gguf.File) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("export: adapter %s against base %s: %s", a.Path, base.Path, fmt.Sprintf(format, args...))
	}
	if t, err := base.Meta.String("general.type"); err == nil && t == "adapter" {
		return bad("the base is itself an adapter (general.type %q); pass the model the adapter was trained on", t)
	}
	arch, err := base.Meta.String("general.architecture")
	if err != nil {
		return bad("%v", err)
	}
	if arch != a.Arch {
		return bad("adapter architecture %q does not match the model's %q (wrong base model?)", a.Arch, arch)
	}
	for _, p := range a.Pairs {
		w, ok := base.Tensor(p.Base)
		if !ok {
			return bad("tensor %q is not in the base model (wrong base model?)", p.Base)
		}
		if len(w.Dims) != 2 {
			return bad("base tensor %q has shape %v; LoRA adapts 2-D weights only", p.Base, w.Dims)
		}
		if p.IsEmbedding() {
			if w.Dims[0] != p.B.Dims[1] || w.Dims[1] != p.A.Dims[1] {
				return bad("token embedding %q: lora_a %v, lora_b %v do not fit base shape %v (want lora_a [r, %d], lora_b [r, %d])", p.Base, p.A.Dims, p.B.Dims, w.Dims, w.Dims[1], w.Dims[0])
			}
			continue
		}
		if w.Dims[0] != p.A.Dims[0] || w.Dims[1] != p.B.Dims[1] {
			return bad("tensor %q: lora_a %v and lora_b %v do not fit base shape %v (want lora_a [%d, r], lora_b [r, %d])", p.Base, p.A.Dims, p.B.Dims, w.Dims, w.Dims[0], w.Dims[1])
		}
	}
	return nil
}

// openMatched opens a base model and an adapter and checks the adapter fits it; the
// caller closes both. what names the command in errors.
func openMatched(basePath, adapterPath, what string) (*gguf.File, *Adapter, error) {
	base, err := gguf.Open(basePath)
	if err != nil {
		return nil, nil, fmt.Errorf("export: %s: base model: %w", what, err)
	}
	a, err := OpenAdapter(adapterPath)
	if err != nil {
		base.Close()
		return nil, nil, err
	}
	if err := a.CheckBase(base); err != nil {
		a.Close()
		base.Close()
		return nil, nil, err
	}
	return base, a, nil
}
