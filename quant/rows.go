package quant

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/ecotune/ecotune/ggml"
)

// RowTypes are the ggml types ecotune quantizes weights to and tests: the
// float types F16 and BF16, and the block types Q8_0, Q4_0, Q4_K and IQ4_NL.
// Quantize accepts any type ggml can quantize without an importance matrix.
var RowTypes = []ggml.Type{ggml.TypeF16, ggml.TypeBF16, ggml.TypeQ8_0, ggml.TypeQ4_0, ggml.TypeQ4_K, ggml.TypeIQ4_NL}

// parallelMin is the smallest number of values worth splitting across goroutines.
const parallelMin = 1 << 16

// Quantize converts rows of rowLen float32 values into type t with ggml's own
// reference quantizers (the ones llama-quantize uses without an importance
// matrix), splitting the rows across GOMAXPROCS goroutines. The output is the
// same as one ggml call: every row is quantized on its own. rowLen must be a
// multiple of t's block size.
func Quantize(t ggml.Type, src []float32, rowLen int) ([]byte, error) {
	if !ggml.CanQuantize(t) {
		return nil, fmt.Errorf("quant: ggml cannot quantize to %s without an importance matrix", t)
	}
	if rowLen <= 0 || len(src)%rowLen != 0 {
		return nil, fmt.Errorf("quant: %d values are not whole rows of %d", len(src), rowLen)
	}
	if rowLen%t.BlockSize() != 0 {
		return nil, fmt.Errorf("quant: row length %d is not a multiple of the %s block size %d", rowLen, t, t.BlockSize())
	}
	nrows := len(src) / rowLen
	workers := min(runtime.GOMAXPROCS(0), nrows, max(1, len(src)/parallelMin))
	if workers <= 1 {
		return ggml.Quantize(t, src, rowLen)
	}
	rowBytes := t.RowSize(rowLen)
	dst := make([]byte, nrows*rowBytes)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		r0, r1 := nrows*w/workers, nrows*(w+1)/workers
		wg.Go(func() {
			out, err := ggml.Quantize(t, src[r0*rowLen:r1*rowLen], rowLen)
			if err != nil {
				errs[w] = err
				return
			}
			copy(dst[r0*rowBytes:], out)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// Dequantize converts n values of type t stored in data back to float32 with
// ggml's own converters.
func Dequantize(t ggml.Type, data []byte, n int) ([]float32, error) {
	out, err := ggml.Dequantize(t, data, n)
	if err != nil {
		return nil, fmt.Errorf("quant: %w", err)
	}
	return out, nil
}

// RoundTrip quantizes rows of rowLen values to t and converts them back: what a
// weight stored as t looks like to the model.
func RoundTrip(t ggml.Type, src []float32, rowLen int) ([]float32, error) {
	if t == ggml.TypeF32 {
		return append([]float32(nil), src...), nil
	}
	q, err := Quantize(t, src, rowLen)
	if err != nil {
		return nil, err
	}
	return Dequantize(t, q, len(src))
}
