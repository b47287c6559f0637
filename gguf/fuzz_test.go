package gguf

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the parser. Every input must either fail
// with ErrMalformed or parse into a file whose tensors lie inside the input and
// whose exact copy reproduces the input byte for byte; allocation must stay
// within allocBound. Run: go test -fuzz=FuzzRead -fuzztime=100000x ./gguf
func FuzzRead(f *testing.F) {
	// Seeds are kept small: the fuzzer minimizes every input that finds new
	// coverage, and that takes time proportional to the input's length.
	meta := &Metadata{}
	meta.Set("general.architecture", ValueOf("llama"))
	meta.Set("llama.block_count", ValueOf(uint32(1)))
	meta.Set("s", ArrayOf([]float32{0.5}))
	small := &Builder{Meta: meta, Tensors: []Tensor{
		{TensorInfo: TensorInfo{Name: "w", Dims: []int64{32, 1}, Type: TypeQ8_0}, Data: DataBytes(make([]byte, 34))},
		{TensorInfo: TensorInfo{Name: "n", Dims: []int64{2}, Type: TypeF16}, Data: DataBytes([]byte{1, 2, 3, 4})},
	}}
	for _, tensors := range [][]Tensor{small.Tensors, nil} { // nil: like llama.cpp's vocab files
		small.Tensors = tensors
		var buf bytes.Buffer
		if _, err := small.WriteTo(&buf); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(deepArray(3))
	// Odd but valid layouts: gaps, out-of-order data, trailing bytes.
	r := newRaw(3, 2, 1).kvU32(KeyAlignment, 16).tensor("a", TypeF32, 64, 4).tensor("b", TypeQ8_0, 0, 32)
	f.Add(r.data(100))
	for _, c := range hostileCases()[:12] {
		f.Add(c.in())
	}

	f.Fuzz(func(t *testing.T, in []byte) {
		before := totalAlloc()
		file, err := ParseBytes(in)
		if got := totalAlloc() - before; got > allocBound(len(in)) {
			t.Fatalf("parsing %d bytes allocated %d (bound %d)", len(in), got, allocBound(len(in)))
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not match ErrMalformed: %v", err)
			}
			return
		}
		for _, ti := range file.Tensors {
			data, err := file.Data(ti.Name)
			if err != nil {
				t.Fatalf("tensor %q: %v", ti.Name, err)
			}
			size, err := ti.Size()
			if err != nil || int64(len(data)) != size {
				t.Fatalf("tensor %q: %d bytes, Size %d, %v", ti.Name, len(data), size, err)
			}
		}
		var out bytes.Buffer
		if _, err := file.WriteTo(&out); err != nil {
			t.Fatalf("exact copy of an accepted file failed: %v", err)
		}
		if !bytes.Equal(in, out.Bytes()) {
			t.Fatalf("exact copy differs from the input (%d vs %d bytes)", len(in), out.Len())
		}
	})
}
