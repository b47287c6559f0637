package trainer

import (
	"fmt"
	"unsafe"

	"github.com/ecotune/ecotune/ggml"
)

// keepTransposed makes, once, a transposed copy of every frozen F32, F16 or BF16 matrix a
// product reads (the blocks' projections and the output layer), on the backend that
// holds the weights. The backward pass multiplies by the transposes (see
// ggml.Graph.OutProdsAsMatMul); without these copies it makes them at every step,
// which ggml does one value at a time. Quantized weights are left out: QLoRA is for
// memory, and a copy would undo it. An F32 weight's copy is kept in the compute type when
// that is narrower (see copyType): the forward pass still reads the F32 weight.
func (m *Model) keepTransposed(on *ggml.Backend) error {
	var ws []*ggml.Tensor
	add := func(t *ggml.Tensor) {
		if t == nil || len(t.Shape()) != 2 || (t.Type() != ggml.TypeF32 && t.Type() != ggml.TypeF16 && t.Type() != ggml.TypeBF16) {
			return
		}
		ws = append(ws, t)
	}
	if out := m.globals[outputW]; out != nil {
		add(out)
	} else {
		add(m.globals[tokEmbd]) // tied: the embeddings are the output layer
	}
	for _, blk := range m.blocks {
		for name, t := range blk {
			if len(name) > 7 && name[len(name)-7:] == ".weight" {
				add(t)
			}
		}
	}
	if len(ws) == 0 {
		return nil
	}
	ctx, err := ggml.NewContext(len(ws), 0)
	if err != nil {
		return err
	}
	m.transposedCtx = ctx
	m.transposed = make(map[string]*ggml.Tensor, len(ws))
	pairs := make([][2]*ggml.Tensor, 0, len(ws))
	if err := ggml.Build(func() {
		for _, w := range ws {
			wt := ctx.NewTensor(m.copyType(w.Type()), w.Ne(1), w.Ne(0)).SetName(w.Name() + ".T")
			m.transposed[w.Name()] = wt
			pairs = append(pairs, [2]*ggml.Tensor{w, wt})
		}
	}); err != nil {
		return err
	}
	if m.transposedBuf, err = ctx.AllocTensors(on); err != nil {
		return fmt.Errorf("transposed weights: %w", err)
	}
	m.transposedBuf.MarkWeights()
	for _, p := range pairs {
		b, err := p[0].Bytes()
		if err != nil {
			return err
		}
		t := transposeBytes(b, p[0].Ne(0), p[0].Ne(1), p[0].Type().TypeSize())
		if p[1].Type() == p[0].Type() {
			err = p[1].SetBytes(t)
		} else {
			err = p[1].SetF32(unsafe.Slice((*float32)(unsafe.Pointer(&t[0])), len(t)/4)) // rounds to nearest even
		}
		if err != nil {
			return fmt.Errorf("transposed weights: %s: %w", p[0].Name(), err)
		}
	}
	return nil
}

// copyType is the type of the kept transpose of a frozen weight of type t: the compute
// type where t is F32 and the compute type is F16 or BF16, else t. The copy serves the
// backward pass's input gradients alone, where a narrower product is what that compute
// type asks for (as PyTorch's autocast does for every product): on AVX2 ggml's F16
// products ran 1.3–1.45× its F32 ones, with AVX512-BF16 its BF16 ones about twice, and the
// copy takes half the memory. The loss and the forward pass stay F32.
func (m *Model) copyType(t ggml.Type) ggml.Type {
	if t == ggml.TypeF32 && (m.computeType == ggml.TypeF16 || m.computeType == ggml.TypeBF16) {
		return m.computeType
	}
	return t
}

// transposeBytes transposes a row-major matrix of rows × cols elements of size bytes
// (4 or 2) each (ggml's [cols, rows]) into cols × rows, in tiles so that both sides
// stay in cache.
func transposeBytes(b []byte, cols, rows, size int) []byte {
	out := make([]byte, len(b))
	if len(b) == 0 {
		return out
	}
	switch size {
	case 4:
		transposeTiles(unsafe.Slice((*uint32)(unsafe.Pointer(&b[0])), len(b)/4),
			unsafe.Slice((*uint32)(unsafe.Pointer(&out[0])), len(out)/4), cols, rows)
	case 2:
		transposeTiles(unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), len(b)/2),
			unsafe.Slice((*uint16)(unsafe.Pointer(&out[0])), len(out)/2), cols, rows)
	default:
		panic(fmt.Sprintf("transposeBytes: element size %d", size))
	}
	return out
}

func transposeTiles[E uint16 | uint32](src, dst []E, cols, rows int) {
	const tile = 64
	for r0 := 0; r0 < rows; r0 += tile {
		r1 := min(r0+tile, rows)
		block := src[r0*cols : r1*cols]
		for c := 0; c < cols; c++ {
			out := dst[c*rows+r0 : c*rows+r1]
			for i := range out {
				out[i] = block[i*cols+c]
			}
		}
	}
}

// transposedOf returns the kept transpose of weight w, or nil.
func (m *Model) transposedOf(w *ggml.Tensor) *ggml.Tensor {
	wt := m.transposed[w.Name()]
	if wt == nil || wt.Ne(0) != w.Ne(1) || wt.Ne(1) != w.Ne(0) {
		return nil
	}
	return wt
}
