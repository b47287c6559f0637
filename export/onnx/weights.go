package onnx

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/ecotune/ecotune/gguf"
)

// DequantizeFunc converts n values of a quantized GGUF type stored in data to
// float32 (package quant's Dequantize does it with ggml's own converters).
type DequantizeFunc func(t gguf.Type, data []byte, n int) ([]float32, error)

// weight is one GGUF tensor written as an initializer.
type weight struct {
	info gguf.TensorInfo
	t    *tensor // the initializer: dims are ggml's ne reversed, so rows stay rows
	// unpermute, when > 0, is the head dimension of a llama q or k projection
	// whose rows are put back from the converter's adjacent-pair order into
	// Hugging Face's halves order.
	unpermute int64
}

// newWeight makes the initializer for GGUF tensor info under the ONNX name.
// F32 and F16 keep their type (F16 is exact, and half the size); BF16 and
// quantized types become F32.
func newWeight(info gguf.TensorInfo, name string) *weight {
	dims := make([]int64, len(info.Dims))
	for i, d := range info.Dims {
		dims[len(dims)-1-i] = d
	}
	typ := typeFloat
	if info.Type == gguf.TypeF16 {
		typ = typeFloat16
	}
	return &weight{info: info, t: &tensor{name: name, dims: dims, typ: typ}}
}

// isFloat reports whether t converts to an initializer without a dequantizer.
func isFloat(t gguf.Type) bool {
	return t == gguf.TypeF32 || t == gguf.TypeF16 || t == gguf.TypeBF16
}

// convert returns the weight's data in its initializer type, in GGUF row order.
func (w *weight) convert(f *gguf.File, deq DequantizeFunc) ([]byte, error) {
	data, err := f.Data(w.info.Name)
	if err != nil {
		return nil, err
	}
	n := w.t.elements()
	switch w.info.Type {
	case gguf.TypeF32, gguf.TypeF16:
		return data, nil
	case gguf.TypeBF16:
		out := make([]byte, 4*n)
		for i := range n {
			binary.LittleEndian.PutUint32(out[4*i:], uint32(binary.LittleEndian.Uint16(data[2*i:]))<<16)
		}
		return out, nil
	}
	if deq == nil {
		return nil, fmt.Errorf("type %s needs dequantizing, and no dequantizer was given (Options.Dequantize)", w.info.Type)
	}
	x, err := deq(w.info.Type, data, int(n))
	if err != nil {
		return nil, err
	}
	if int64(len(x)) != n {
		return nil, fmt.Errorf("dequantizing %s gave %d values, want %d", w.info.Type, len(x), n)
	}
	out := make([]byte, 4*n)
	for i, v := range x {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out, nil
}

// write writes the initializer's bytes to out.
func (w *weight) write(out io.Writer, f *gguf.File, deq DequantizeFunc) error {
	data, err := w.convert(f, deq)
	if err != nil {
		return fmt.Errorf("tensor %s: %w", w.info.Name, err)
	}
	if w.unpermute == 0 {
		_, err = out.Write(data)
		return err
	}
	// GGUF row h·D + 2i + j holds Hugging Face row h·D + j·D/2 + i.
	d := w.unpermute
	rows := w.t.dims[0]
	rowBytes := int64(len(data)) / rows
	buf := make([]byte, 0, len(data))
	for h := range rows / d {
		for j := range int64(2) {
			for i := range d / 2 {
				r := h*d + 2*i + j
				buf = append(buf, data[r*rowBytes:(r+1)*rowBytes]...)
			}
		}
	}
	_, err = out.Write(buf)
	return err
}
