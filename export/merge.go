package export

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/quant"
)

// AdapterScale names an adapter file and the scale to merge it with (1 is the
// adapter as trained, like llama.cpp's --lora; --lora-scaled's factor otherwise).
type AdapterScale struct {
	Path  string
	Scale float64
}

// MergeOptions configures Merge.
type MergeOptions struct {
	Base     string         // the base model GGUF
	Adapters []AdapterScale // applied in order; at least one
	Out      string         // the merged model GGUF, replaced atomically
	// Type is "" to give every tensor its base type back (a quantized
	// weight is dequantized, merged and quantized again to its own type),
	// or a file type name of quant.ParseFileType ("f16", "q8_0", "q4_k")
	// to choose each tensor's type with llama-quantize's rules.
	Type string
	// Progress, if set, is called after each tensor is written.
	Progress func(Progress)
}

// Progress reports how far Merge is.
type Progress struct {
	Tensor      string // the tensor just written
	Merged      bool   // whether an adapter changed it
	Done, Total int    // tensors written, tensors in the model
	// BytesDone and BytesTotal count the base model's tensor data.
	BytesDone, BytesTotal int64
}

// MergeSummary describes a finished merge.
type MergeSummary struct {
	Tensors int // tensors written
	Merged  int // tensors an adapter changed
	// Retyped is set when MergeOptions.Type chose the types; FileType is
	// then the file type written.
	Retyped           bool
	FileType          quant.FileType
	InBytes, OutBytes int64 // file sizes of the base and the merged model
}

// Merge writes base + Σ s·B·A for every adapter into a new model file,
// streaming one tensor at a time: each adapted weight is dequantized with
// ggml's converters, the low-rank update is computed in float64 and added, and
// the sum is stored back in the output type. Every other tensor and all
// metadata (tokenizer, chat template, hyper-parameters) are copied; provenance
// keys name the base and the adapters with their scales. s is llama.cpp's:
// scale·alpha/rank, or scale when the adapter's alpha is 0.
func Merge(ctx context.Context, opts MergeOptions) (*MergeSummary, error) {
	if len(opts.Adapters) == 0 {
		return nil, errors.New("export: merge: no adapters given")
	}
	base, err := gguf.Open(opts.Base)
	if err != nil {
		return nil, fmt.Errorf("export: merge: base model: %w", err)
	}
	defer base.Close()
	if t, err := base.Meta.String("general.type"); err == nil && t == "adapter" {
		return nil, fmt.Errorf("export: merge: %s is an adapter (general.type %q), not a base model", opts.Base, t)
	}
	adapters := make([]*Adapter, len(opts.Adapters))
	defer func() {
		for _, a := range adapters {
			a.Close()
		}
	}()
	for i, as := range opts.Adapters {
		if math.IsNaN(as.Scale) || math.IsInf(as.Scale, 0) {
			return nil, fmt.Errorf("export: merge: adapter %s: scale %v is not finite", as.Path, as.Scale)
		}
		a, err := OpenAdapter(as.Path)
		if err != nil {
			return nil, err
		}
		adapters[i] = a
		if err := a.CheckBase(base); err != nil {
			return nil, err
		}
	}

	// The output's tensors, in order, with their types.
	type outTensor struct {
		info gguf.TensorInfo
		from gguf.Type
	}
	var plan []outTensor
	sum := &MergeSummary{InBytes: base.Size}
	meta := base.Meta.Clone()
	if opts.Type == "" {
		for _, t := range base.Tensors {
			plan = append(plan, outTensor{info: gguf.TensorInfo{Name: t.Name, Dims: t.Dims, Type: t.Type}, from: t.Type})
		}
	} else {
		ft, err := quant.ParseFileType(opts.Type)
		if err != nil {
			return nil, fmt.Errorf("export: merge: %w", err)
		}
		// Requantizing is allowed: an adapted weight is dequantized anyway.
		qp, err := quant.Plan(base, quant.Options{Type: ft, AllowRequantize: true})
		if err != nil {
			return nil, fmt.Errorf("export: merge: %w", err)
		}
		for _, tp := range qp.Tensors {
			plan = append(plan, outTensor{info: gguf.TensorInfo{Name: tp.Name, Dims: tp.Dims, Type: tp.To}, from: tp.From})
		}
		// As llama-quantize: these keys move to the end with the new values.
		meta.Delete("general.quantization_version")
		meta.Set("general.quantization_version", gguf.ValueOf(uint32(2)))
		meta.Delete("general.file_type")
		meta.Set("general.file_type", gguf.ValueOf(uint32(ft)))
		sum.FileType, sum.Retyped = ft, true
	}
	setProvenance(meta, base, opts.Adapters)

	var bytesTotal int64
	for _, t := range base.Tensors {
		n, _ := t.Size()
		bytesTotal += n
	}
	b := &gguf.Builder{Version: gguf.Version, Meta: meta}
	var done int
	var bytesDone int64
	for _, ot := range plan {
		var updates []update
		for i, a := range adapters {
			if p, ok := a.Pair(ot.info.Name); ok {
				updates = append(updates, update{a: a, p: p, s: a.Scale(p, opts.Adapters[i].Scale)})
			}
		}
		if len(updates) > 0 && ot.info.Type != gguf.TypeF32 && !ggml.CanQuantize(ggml.Type(ot.info.Type)) {
			return nil, fmt.Errorf("export: merge: tensor %s: its type %s cannot be written again without an importance matrix; merge into another type with --type (e.g. q4_k)", ot.info.Name, ot.info.Type)
		}
		b.Tensors = append(b.Tensors, gguf.Tensor{
			TensorInfo: ot.info,
			Data: func(w io.Writer) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := writeMerged(w, base, ot.info, ot.from, updates); err != nil {
					return fmt.Errorf("export: merge: tensor %s: %w", ot.info.Name, err)
				}
				done++
				in, _ := base.Tensor(ot.info.Name)
				n, _ := in.Size()
				bytesDone += n
				if opts.Progress != nil {
					opts.Progress(Progress{Tensor: ot.info.Name, Merged: len(updates) > 0, Done: done, Total: len(plan), BytesDone: bytesDone, BytesTotal: bytesTotal})
				}
				return nil
			},
		})
		if len(updates) > 0 {
			sum.Merged++
		}
	}
	sum.Tensors = len(plan)
	if err := b.WriteFile(opts.Out); err != nil {
		return nil, fmt.Errorf("export: merge: %w", err)
	}
	if st, err := os.Stat(opts.Out); err == nil {
		sum.OutBytes = st.Size()
	}
	return sum, nil
}

// setProvenance records where a merged model comes from: the base model as
// general.base_model.0 (GGUF's lineage keys, replacing the base's own lineage)
// and the adapters with their scales under ecotune.merge.
func setProvenance(meta *gguf.Metadata, base *gguf.File, adapters []AdapterScale) {
	for _, k := range meta.Keys() {
		if strings.HasPrefix(k, "general.base_model.") {
			meta.Delete(k)
		}
	}
	meta.Set("general.base_model.count", gguf.ValueOf(uint32(1)))
	name, err := base.Meta.String("general.name")
	if err != nil {
		name = strings.TrimSuffix(filepath.Base(base.Path), filepath.Ext(base.Path))
	}
	meta.Set("general.base_model.0.name", gguf.ValueOf(name))
	for _, k := range []string{"organization", "version"} {
		if v, err := base.Meta.String("general." + k); err == nil {
			meta.Set("general.base_model.0."+k, gguf.ValueOf(v))
		}
	}
	if v, err := base.Meta.String("general.source.url"); err == nil {
		meta.Set("general.base_model.0.repo_url", gguf.ValueOf(v))
	}
	names := make([]string, len(adapters))
	scales := make([]float32, len(adapters))
	for i, a := range adapters {
		names[i] = filepath.Base(a.Path)
		scales[i] = float32(a.Scale)
	}
	meta.Set("ecotune.merge.base", gguf.ValueOf(filepath.Base(base.Path)))
	meta.Set("ecotune.merge.adapters", gguf.ArrayOf(names))
	meta.Set("ecotune.merge.scales", gguf.ArrayOf(scales))
}

// update is one adapter's contribution to one tensor: s·B·A.
type update struct {
	a *Adapter
	p Pair
	s float64
}

// writeMerged writes one output tensor: copied when nothing changes it,
// otherwise dequantized, updated and stored as info.Type.
func writeMerged(w io.Writer, base *gguf.File, info gguf.TensorInfo, from gguf.Type, updates []update) error {
	data, err := base.Data(info.Name)
	if err != nil {
		return err
	}
	if len(updates) == 0 && from == info.Type {
		_, err := w.Write(data)
		return err
	}
	n, _ := info.Elements()
	x, err := quant.Dequantize(ggml.Type(from), data, int(n))
	if err != nil {
		return err
	}
	if len(updates) > 0 {
		if err := applyUpdates(x, info.Dims, updates); err != nil {
			return err
		}
	}
	var out []byte
	if info.Type == gguf.TypeF32 {
		out = make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
	} else if out, err = quant.Quantize(ggml.Type(info.Type), x, int(info.Dims[0])); err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// lowRank is one update as the product L·R of a rows×r and an r×cols matrix,
// both row-major in float64, times s.
type lowRank struct {
	l, r []float64
	rank int
	s    float64
}

// applyUpdates adds Σ s·L·R to the weight x (rows of dims[0] values). Each
// element's update is summed in float64 and added to the float32 weight once,
// so the only rounding is the final one to float32.
func applyUpdates(x []float32, dims []int64, updates []update) error {
	cols, rows := int(dims[0]), int(dims[1])
	lrs := make([]lowRank, len(updates))
	for i, u := range updates {
		a, err := tensorFloat64(u.a.File, u.p.A)
		if err != nil {
			return fmt.Errorf("adapter %s: %w", u.a.Path, err)
		}
		b, err := tensorFloat64(u.a.File, u.p.B)
		if err != nil {
			return fmt.Errorf("adapter %s: %w", u.a.Path, err)
		}
		r := int(u.p.Rank())
		if u.p.IsEmbedding() {
			// Flipped pair: delta[t][j] = Σ_k A[t][k]·B[j][k], so L = A
			// (n_vocab rows of r) and R = Bᵀ.
			lrs[i] = lowRank{l: a, r: transpose(b, cols, r), rank: r, s: u.s}
		} else {
			// delta[i][j] = Σ_k B[i][k]·A[k][j]: L = B (n_out rows of r),
			// R = A (r rows of n_in).
			lrs[i] = lowRank{l: b, r: a, rank: r, s: u.s}
		}
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), rows*cols/(1<<16)))
	var wg sync.WaitGroup
	for wk := range workers {
		r0, r1 := rows*wk/workers, rows*(wk+1)/workers
		wg.Go(func() {
			acc := make([]float64, cols)
			for i := r0; i < r1; i++ {
				clear(acc)
				for _, lr := range lrs {
					for k := range lr.rank {
						c := lr.s * lr.l[i*lr.rank+k]
						if c == 0 {
							continue
						}
						row := lr.r[k*cols : (k+1)*cols]
						for j, v := range row {
							acc[j] += c * v
						}
					}
				}
				xs := x[i*cols : (i+1)*cols]
				for j := range xs {
					xs[j] = float32(float64(xs[j]) + acc[j])
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// transpose returns the r×n transpose of m, n rows of r values, row-major.
func transpose(m []float64, n, r int) []float64 {
	t := make([]float64, len(m))
	for i := range n {
		for k := range r {
			t[k*n+i] = m[i*r+k]
		}
	}
	return t
}

// tensorFloat64 reads an adapter tensor as float64 through ggml's converters.
func tensorFloat64(f *gguf.File, info gguf.TensorInfo) ([]float64, error) {
	data, err := f.Data(info.Name)
	if err != nil {
		return nil, err
	}
	n, _ := info.Elements()
	x, err := quant.Dequantize(ggml.Type(info.Type), data, int(n))
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", info.Name, err)
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out, nil
}
