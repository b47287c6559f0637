//go:build cgo

package ggml

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// Independent float64 references and block decoders, written from the formats' specs
// (ggml-common.h block layouts), so that ggml is checked against something it is not.

func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * frac / 1024 * math.Pow(2, -14)
	case 31:
		if frac == 0 {
			return sign * math.Inf(1)
		}
		return math.NaN()
	}
	return sign * (1 + frac/1024) * math.Pow(2, float64(exp-15))
}

var iq4nlValues = [16]float64{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// decodeRef turns n elements of type t into float64 by the block layout alone.
func decodeRef(t *testing.T, typ Type, b []byte, n int) []float64 {
	t.Helper()
	out := make([]float64, 0, n)
	le := binary.LittleEndian
	switch typ {
	case TypeF32:
		for i := 0; i < n; i++ {
			out = append(out, float64(math.Float32frombits(le.Uint32(b[4*i:]))))
		}
	case TypeF16:
		for i := 0; i < n; i++ {
			out = append(out, halfToFloat(le.Uint16(b[2*i:])))
		}
	case TypeBF16:
		for i := 0; i < n; i++ {
			out = append(out, float64(math.Float32frombits(uint32(le.Uint16(b[2*i:]))<<16)))
		}
	case TypeQ8_0:
		for blk := 0; blk < n/32; blk++ {
			p := b[blk*34:]
			d := halfToFloat(le.Uint16(p))
			for j := 0; j < 32; j++ {
				out = append(out, d*float64(int8(p[2+j])))
			}
		}
	case TypeQ4_0, TypeIQ4_NL:
		for blk := 0; blk < n/32; blk++ {
			p := b[blk*18:]
			d := halfToFloat(le.Uint16(p))
			var v [32]float64
			for j := 0; j < 16; j++ {
				lo, hi := p[2+j]&0xf, p[2+j]>>4
				if typ == TypeQ4_0 {
					v[j], v[j+16] = d*float64(int(lo)-8), d*float64(int(hi)-8)
				} else {
					v[j], v[j+16] = d*iq4nlValues[lo], d*iq4nlValues[hi]
				}
			}
			out = append(out, v[:]...)
		}
	case TypeQ4_K:
		for blk := 0; blk < n/256; blk++ {
			p := b[blk*144:]
			d, dmin := halfToFloat(le.Uint16(p)), halfToFloat(le.Uint16(p[2:]))
			sc := p[4:16]
			q := p[16:144]
			scaleMin := func(j int) (float64, float64) {
				if j < 4 {
					return float64(sc[j] & 63), float64(sc[j+4] & 63)
				}
				return float64(sc[j+4]&0xf | (sc[j-4]>>6)<<4), float64(sc[j+4]>>4 | (sc[j]>>6)<<4)
			}
			for j, is := 0, 0; j < 256; j, is = j+64, is+2 {
				s1, m1 := scaleMin(is)
				s2, m2 := scaleMin(is + 1)
				for l := 0; l < 32; l++ {
					out = append(out, d*s1*float64(q[l]&0xf)-dmin*m1)
				}
				for l := 0; l < 32; l++ {
					out = append(out, d*s2*float64(q[l]>>4)-dmin*m2)
				}
				q = q[32:]
			}
		}
	default:
		t.Fatalf("no reference decoder for %s", typ)
	}
	return out
}

func randn(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

func to64(v []float32) []float64 {
	o := make([]float64, len(v))
	for i, x := range v {
		o[i] = float64(x)
	}
	return o
}

// matmulRef returns y[j][i] = Σ_k w[i][k]·x[j][k] for w [m][k], x [n][k] (row-major).
func matmulRef(w []float64, x []float64, k, m, n int) []float64 {
	y := make([]float64, m*n)
	for j := 0; j < n; j++ {
		for i := 0; i < m; i++ {
			s := 0.0
			for l := 0; l < k; l++ {
				s += w[i*k+l] * x[j*k+l]
			}
			y[j*m+i] = s
		}
	}
	return y
}

func rmsNormRef(x []float64, n int, eps float64) []float64 {
	y := make([]float64, len(x))
	for r := 0; r < len(x)/n; r++ {
		s := 0.0
		for _, v := range x[r*n : (r+1)*n] {
			s += v * v
		}
		inv := 1 / math.Sqrt(s/float64(n)+eps)
		for i := 0; i < n; i++ {
			y[r*n+i] = x[r*n+i] * inv
		}
	}
	return y
}

// ropeRef rotates x [tokens][heads][headDim] in place of a copy.
func ropeRef(x []float64, headDim, heads, tokens int, pos []int32, dims int, neox bool, base float64) []float64 {
	y := append([]float64(nil), x...)
	for t := 0; t < tokens; t++ {
		for h := 0; h < heads; h++ {
			row := y[(t*heads+h)*headDim:]
			for i := 0; i < dims/2; i++ {
				theta := float64(pos[t]) * math.Pow(base, -2*float64(i)/float64(dims))
				c, s := math.Cos(theta), math.Sin(theta)
				a, b := 2*i, 2*i+1
				if neox {
					a, b = i, i+dims/2
				}
				x0, x1 := row[a], row[b]
				row[a], row[b] = x0*c-x1*s, x0*s+x1*c
			}
		}
	}
	return y
}

func softmaxRef(x []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, v)
	}
	y := make([]float64, len(x))
	s := 0.0
	for i, v := range x {
		y[i] = math.Exp(v - m)
		s += y[i]
	}
	for i := range y {
		y[i] /= s
	}
	return y
}

// causalAttentionRef is causal softmax(q·kᵀ·scale)·v for q [T][nHead][hd] and k, v
// [T][nKV][hd] (row-major; query heads share key heads in groups), as [T][nHead][hd].
func causalAttentionRef(q, k, v []float64, T, nHead, nKV, hd int, scale float64) []float64 {
	o := make([]float64, T*nHead*hd)
	for h := 0; h < nHead; h++ {
		kh := h / (nHead / nKV)
		for i := 0; i < T; i++ {
			scores := make([]float64, i+1)
			for j := 0; j <= i; j++ {
				s := 0.0
				for l := 0; l < hd; l++ {
					s += q[(i*nHead+h)*hd+l] * k[(j*nKV+kh)*hd+l]
				}
				scores[j] = s * scale
			}
			p := softmaxRef(scores)
			for l := 0; l < hd; l++ {
				s := 0.0
				for j := 0; j <= i; j++ {
					s += p[j] * v[(j*nKV+kh)*hd+l]
				}
				o[(i*nHead+h)*hd+l] = s
			}
		}
	}
	return o
}

func maxAbsDiff(a []float32, b []float64) (float64, int) {
	worst, at := 0.0, -1
	for i := range b {
		if d := math.Abs(float64(a[i]) - b[i]); d > worst || math.IsNaN(d) {
			worst, at = d, i
			if math.IsNaN(d) {
				return math.Inf(1), i
			}
		}
	}
	return worst, at
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

// testBackends is the table every op test runs over: the CPU always, and each GPU when
// the binary was built with CUDA and a device is present.
func testBackends(t *testing.T) []*Backend {
	t.Helper()
	cpu, err := NewCPUBackend(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cpu.Close() })
	out := []*Backend{cpu}
	if os.Getenv("ECOTUNE_NO_GPU") == "" {
		for i := 0; i < GPUCount(); i++ {
			g, err := NewGPUBackend(i)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { g.Close() })
			out = append(out, g)
		}
	}
	return out
}
