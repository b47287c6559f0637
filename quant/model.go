package quant

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
)

// qntVersion is GGML_QNT_VERSION, which llama-quantize writes to
// general.quantization_version: the version of the block formats.
const qntVersion = 2

// Options configures QuantizeModel and Plan.
type Options struct {
	// Type is the file type to write (ParseFileType reads the user's name).
	Type FileType
	// Pure gives every quantizable tensor Type's default type, without the
	// mix rules (llama-quantize --pure); row widths the block does not divide
	// still fall back.
	Pure bool
	// AllowRequantize permits quantizing tensors that are already quantized
	// (llama-quantize --allow-requantize); the result is worse than quantizing
	// the original weights.
	AllowRequantize bool
	// Progress, if set, is called after each tensor is written.
	Progress func(Progress)
}

// Progress reports how far QuantizeModel is.
type Progress struct {
	Tensor      string // the tensor just written
	Done, Total int    // tensors written, tensors in the model
	// BytesDone and BytesTotal count input tensor data.
	BytesDone, BytesTotal int64
}

// TensorPlan is what happens to one tensor.
type TensorPlan struct {
	Name              string
	Dims              []int64
	From, To          gguf.Type
	InBytes, OutBytes int64
}

// Summary describes a quantization: its tensors in output order and the
// sizes before and after.
type Summary struct {
	FileType FileType
	Tensors  []TensorPlan
	Params   int64
	// InBytes and OutBytes count tensor data; the file sizes are filled in
	// by QuantizeModel only.
	InBytes, OutBytes         int64
	InFileBytes, OutFileBytes int64
	// Fallbacks counts tensors whose row width the chosen type's block did
	// not divide, so they got a type with a smaller block (or F16).
	Fallbacks int
}

// BitsPerWeight returns the tensor data's average bits per parameter before and after.
func (s *Summary) BitsPerWeight() (before, after float64) {
	if s.Params == 0 {
		return 0, 0
	}
	return 8 * float64(s.InBytes) / float64(s.Params), 8 * float64(s.OutBytes) / float64(s.Params)
}

// TypeCounts returns how many output tensors have each type.
func (s *Summary) TypeCounts() map[gguf.Type]int {
	c := map[gguf.Type]int{}
	for _, t := range s.Tensors {
		c[t.To]++
	}
	return c
}

// Plan decides each tensor's type the way llama-quantize does for opts.Type,
// without writing anything: 1-D tensors (norms, biases) and other tensors
// llama.cpp never quantizes keep their type; the output matrix (or tied token
// embeddings) gets Q6_K for 4- and 5-bit types; Q4_K_M, Q4_K_S and IQ4_NL give
// attn_v and ffn_down of some layers more bits; a row width the block does not
// divide falls back to a type with a smaller block. Tensors are listed in
// llama.cpp's order (outside blocks first, then block by block, by name).
func Plan(f *gguf.File, opts Options) (*Summary, error) {
	hp, err := readHparams(f.Meta)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(f.Tensors))
	for i, t := range f.Tensors {
		names[i] = t.Name
	}
	order := llamaOrder(f.Tensors)
	sorted := make([]string, len(order))
	for i, j := range order {
		sorted[i] = names[j]
	}
	mx, err := newMixer(hp, opts.Type, opts.Pure, sorted)
	if err != nil {
		return nil, err
	}
	s := &Summary{FileType: opts.Type}
	for _, j := range order {
		t := f.Tensors[j]
		to, err := mx.typeFor(t)
		if err != nil {
			return nil, err
		}
		if to != t.Type {
			if t.Type.IsQuantized() && !opts.AllowRequantize {
				return nil, fmt.Errorf("quant: tensor %s is already %s: quantizing it again to %s loses quality; quantize the F32/F16 model, or allow requantizing", t.Name, t.Type, to)
			}
			if !ggml.CanQuantize(ggml.Type(to)) {
				return nil, fmt.Errorf("quant: tensor %s: ggml cannot quantize to %s", t.Name, to)
			}
		}
		in, err := t.Size()
		if err != nil {
			return nil, fmt.Errorf("quant: tensor %s: %w", t.Name, err)
		}
		outInfo := gguf.TensorInfo{Name: t.Name, Dims: t.Dims, Type: to}
		out, err := outInfo.Size()
		if err != nil {
			return nil, fmt.Errorf("quant: tensor %s as %s: %w", t.Name, to, err)
		}
		n, _ := t.Elements()
		s.Params += n
		s.InBytes += in
		s.OutBytes += out
		s.Tensors = append(s.Tensors, TensorPlan{Name: t.Name, Dims: slices.Clone(t.Dims), From: t.Type, To: to, InBytes: in, OutBytes: out})
	}
	s.Fallbacks = mx.fallbacks
	return s, nil
}

// QuantizeModel writes the model at in to out with the tensor types Plan
// chooses, quantizing with ggml's reference quantizers, one tensor at a time:
// memory holds one tensor as float32 plus its quantized bytes. The metadata is
// copied with general.quantization_version and general.file_type set (moved
// to the end, as llama-quantize does) and split keys removed, so the output
// matches llama-quantize's byte for byte. out is replaced atomically; on error
// or cancellation nothing is left behind.
func QuantizeModel(ctx context.Context, in, out string, opts Options) (*Summary, error) {
	f, err := gguf.Open(in)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := Plan(f, opts)
	if err != nil {
		return nil, err
	}
	s.InFileBytes = f.Size

	meta := f.Meta.Clone()
	meta.Delete("general.quantization_version")
	meta.Set("general.quantization_version", gguf.ValueOf(uint32(qntVersion)))
	meta.Delete("general.file_type")
	meta.Set("general.file_type", gguf.ValueOf(uint32(opts.Type)))
	for _, k := range []string{"split.no", "split.count", "split.tensors.count"} {
		meta.Delete(k)
	}

	b := &gguf.Builder{Version: gguf.Version, Meta: meta, Tensors: make([]gguf.Tensor, len(s.Tensors))}
	var done int
	var bytesDone int64
	for i, tp := range s.Tensors {
		b.Tensors[i] = gguf.Tensor{
			TensorInfo: gguf.TensorInfo{Name: tp.Name, Dims: tp.Dims, Type: tp.To},
			Data: func(w io.Writer) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := convertTensor(f, tp, w); err != nil {
					return err
				}
				done++
				bytesDone += tp.InBytes
				if opts.Progress != nil {
					opts.Progress(Progress{Tensor: tp.Name, Done: done, Total: len(s.Tensors), BytesDone: bytesDone, BytesTotal: s.InBytes})
				}
				return nil
			},
		}
	}
	if err := b.WriteFile(out); err != nil {
		return nil, err
	}
	st, err := os.Stat(out)
	if err != nil {
		return nil, fmt.Errorf("quant: %w", err)
	}
	s.OutFileBytes = st.Size()
	return s, nil
}

// convertTensor writes one tensor's data in its planned type.
func convertTensor(f *gguf.File, tp TensorPlan, w io.Writer) error {
	data, err := f.Data(tp.Name)
	if err != nil {
		return err
	}
	if tp.From == tp.To {
		_, err := w.Write(data)
		return err
	}
	n := int64(1)
	for _, d := range tp.Dims {
		n *= d
	}
	src, err := ggml.Dequantize(ggml.Type(tp.From), data, int(n))
	if err != nil {
		return fmt.Errorf("quant: tensor %s: %w", tp.Name, err)
	}
	q, err := Quantize(ggml.Type(tp.To), src, int(tp.Dims[0]))
	if err != nil {
		return fmt.Errorf("quant: tensor %s: %w", tp.Name, err)
	}
	_, err = w.Write(q)
	return err
}
