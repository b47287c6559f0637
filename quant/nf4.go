package quant

import (
	"fmt"
	"math"
)

// NF4BlockSize is the number of consecutive values that share one absmax scale
// in the NF4 codec: QLoRA's (and bitsandbytes') default block size.
const NF4BlockSize = 64

// NF4Codebook is QLoRA's 4-bit NormalFloat codebook: bitsandbytes' NF4 table,
// the quantiles of a standard normal distribution scaled to [-1, 1] with an
// exact zero. Code i decodes to NF4Codebook[i] times the block's absmax.
var NF4Codebook = [16]float32{
	-1.0,
	-0.6961928009986877,
	-0.5250730514526367,
	-0.39491748809814453,
	-0.28444138169288635,
	-0.18477343022823334,
	-0.09105003625154495,
	0.0,
	0.07958029955625534,
	0.16093020141124725,
	0.24611230194568634,
	0.33791524171829224,
	0.44070982933044434,
	0.5626170039176941,
	0.7229568362236023,
	1.0,
}

// nf4ZeroCode is the index of 0.0 in NF4Codebook.
const nf4ZeroCode = 7

// nf4Thresholds[i] separates codes i and i+1: the constants of bitsandbytes'
// decision tree (dQuantizeNF4 in csrc/kernels.cu), which are the midpoints of
// adjacent codebook values written as float64 decimals and rounded to float32.
// Four of them sit one float32 ulp from the rounded exact midpoint; using
// bitsandbytes' own keeps the codes identical to its.
var nf4Thresholds = [15]float32{
	-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
	-0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
	0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
	0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
}

// NF4Code returns the index of the codebook value nearest to v, a value
// already divided by its block's absmax (so within [-1, 1]). A value exactly
// halfway between two codebook values takes the lower one, as bitsandbytes'
// strict comparisons do; NaN gives code 0, also as bitsandbytes does.
func NF4Code(v float32) uint8 {
	// Binary search over the sorted thresholds: the code is the number of
	// thresholds strictly below v.
	lo, hi := 0, len(nf4Thresholds)
	for lo < hi {
		mid := (lo + hi) / 2
		if v > nf4Thresholds[mid] {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return uint8(lo)
}

// NF4 is a vector quantized with the NF4 codec: blocks of NF4BlockSize
// values, each stored as 4-bit codebook indices and one float32 absmax scale.
// The last block holds the remaining N mod NF4BlockSize values when N is not
// a multiple of the block size. Storage is 4 bits per value plus 32 bits per
// block: 4.5 bits per value for full blocks.
//
// The scale stays float32 (QLoRA's "double quantization" of the scales to
// 8 bits is not done): it costs 0.375 bits per value more and keeps the
// codec exact and simple.
type NF4 struct {
	N      int       // number of values
	Scales []float32 // absmax of each block: ceil(N / NF4BlockSize) entries
	// Codes holds two codebook indices per byte, value 2i in the high nibble
	// and value 2i+1 in the low nibble (bitsandbytes' packing); ceil(N/2)
	// bytes, the low nibble of the last byte unused (zero) when N is odd.
	Codes []byte
}

// QuantizeNF4 encodes x: each block is divided by its absolute maximum and
// every value is rounded to the nearest codebook entry. A block of zeros gets
// scale 0 and the code of 0.0. Values must be finite.
func QuantizeNF4(x []float32) *NF4 {
	nb := (len(x) + NF4BlockSize - 1) / NF4BlockSize
	q := &NF4{N: len(x), Scales: make([]float32, nb), Codes: make([]byte, (len(x)+1)/2)}
	for b := range nb {
		blk := x[b*NF4BlockSize : min((b+1)*NF4BlockSize, len(x))]
		var absmax float32
		for _, v := range blk {
			absmax = max(absmax, float32(math.Abs(float64(v))))
		}
		q.Scales[b] = absmax
		// bitsandbytes multiplies by the reciprocal rather than dividing;
		// doing the same keeps the codes identical to its.
		inv := float32(0)
		if absmax > 0 {
			inv = 1 / absmax
		}
		for j, v := range blk {
			c := uint8(nf4ZeroCode)
			if absmax > 0 {
				c = NF4Code(v * inv)
			}
			i := b*NF4BlockSize + j
			if i%2 == 0 {
				q.Codes[i/2] = c << 4
			} else {
				q.Codes[i/2] |= c
			}
		}
	}
	return q
}

// Dequantize decodes q: code value times block absmax, in float32. It fails if
// the lengths of Scales and Codes do not fit N.
func (q *NF4) Dequantize() ([]float32, error) {
	if q.N < 0 {
		return nil, fmt.Errorf("quant: nf4: negative length %d", q.N)
	}
	if nb := (q.N + NF4BlockSize - 1) / NF4BlockSize; len(q.Scales) != nb {
		return nil, fmt.Errorf("quant: nf4: %d scales for %d values, want %d", len(q.Scales), q.N, nb)
	}
	if len(q.Codes) != (q.N+1)/2 {
		return nil, fmt.Errorf("quant: nf4: %d code bytes for %d values, want %d", len(q.Codes), q.N, (q.N+1)/2)
	}
	out := make([]float32, q.N)
	for i := range out {
		c := q.Codes[i/2]
		if i%2 == 0 {
			c >>= 4
		}
		out[i] = NF4Codebook[c&0x0f] * q.Scales[i/NF4BlockSize]
	}
	return out, nil
}

// Bytes returns the storage size of q: packed codes plus float32 scales.
func (q *NF4) Bytes() int { return len(q.Codes) + 4*len(q.Scales) }
