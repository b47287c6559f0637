package convert

import (
	"fmt"
	"io"

	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/safetensors"
)

// chunkBytes bounds how much of a tensor passes through memory at once: the
// converter's memory does not grow with the model.
const chunkBytes = 4 << 20

// ggufRow is the GGUF row that HF row f of a q or k projection of heads
// heads becomes: transformers keeps the two halves of each rotated pair D/2
// rows apart, llama.cpp's RoPE wants them adjacent, so HF row h·D + j·D/2 + i
// is GGUF row h·D + 2i + j.
func ggufRow(f, rows, heads int) int {
	d := rows / heads
	h, r := f/d, f%d
	j, i := r/(d/2), r%(d/2)
	return h*d + 2*i + j
}

// hfRow is ggufRow's inverse.
func hfRow(g, rows, heads int) int {
	d := rows / heads
	h, r := g/d, g%d
	i, j := r/2, r%2
	return h*d + j*(d/2) + i
}

func checkPermutable(rows, heads int) error {
	if heads <= 0 || rows%heads != 0 || (rows/heads)%2 != 0 {
		return fmt.Errorf("%d rows are not %d heads of an even size", rows, heads)
	}
	return nil
}

// rowShape splits a row-major shape into rows of its last dimension.
func rowShape(shape []int64) (rows, rowLen int) {
	rowLen = 1
	if len(shape) > 0 {
		rowLen = int(shape[len(shape)-1])
	}
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	if rowLen == 0 {
		return 0, 0
	}
	return int(n / int64(rowLen)), rowLen
}

// rowCopier moves rows from a source to w, converting each chunk: the one
// streaming loop both directions use.
type rowCopier struct {
	rows, inRow int                             // row count and source bytes per row
	src         func(outRow int) int            // source row of each output row
	read        func(p []byte, row int) error   // read len(p) bytes from source row on
	conv        func(in []byte) ([]byte, error) // nil: bytes unchanged
}

func (c rowCopier) copyTo(w io.Writer) error {
	if c.inRow == 0 || c.rows == 0 {
		return nil
	}
	per := max(1, chunkBytes/c.inRow)
	buf := make([]byte, min(per, c.rows)*c.inRow)
	for r0 := 0; r0 < c.rows; {
		n := min(per, c.rows-r0)
		if c.src != nil {
			n = 1 // rows out of order: one at a time
		}
		p := buf[:n*c.inRow]
		s := r0
		if c.src != nil {
			s = c.src(r0)
		}
		if err := c.read(p, s); err != nil {
			return err
		}
		out := p
		if c.conv != nil {
			var err error
			if out, err = c.conv(p); err != nil {
				return err
			}
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
		r0 += n
	}
	return nil
}

// writeTensor streams checkpoint tensor info from sh to w as GGUF type out,
// with tm's layout fix applied.
func writeTensor(w io.Writer, sh *shard, info safetensors.TensorInfo, tm tensorMap, out gguf.Type) error {
	rows, rowLen := rowShape(info.Shape)
	size := int(info.DType.Size())
	base := sh.st.DataOffset + info.Begin
	c := rowCopier{rows: rows, inRow: rowLen * size,
		read: func(p []byte, row int) error {
			_, err := sh.f.ReadAt(p, base+int64(row)*int64(rowLen*size))
			return err
		}}
	if tm.op == opPermuteQ || tm.op == opPermuteK {
		if err := checkPermutable(rows, tm.heads); err != nil {
			return fmt.Errorf("%s: %w", tm.hf, err)
		}
		c.src = func(g int) int { return hfRow(g, rows, tm.heads) }
	}
	if !sameLayout(info.DType, out) || tm.op == opPlusOne {
		outSize := int(out.TypeSize())
		var dst []byte
		c.conv = func(in []byte) ([]byte, error) {
			x, err := safetensors.ToFloat32(info.DType, in)
			if err != nil {
				return nil, err
			}
			if tm.op == opPlusOne {
				for i := range x {
					x[i]++
				}
			}
			if cap(dst) < len(x)*outSize {
				dst = make([]byte, len(x)*outSize)
			}
			dst = dst[:len(x)*outSize]
			return dst, encodeRow(out, x, dst)
		}
	}
	return c.copyTo(w)
}
