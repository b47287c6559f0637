//go:build cgo

package bindings

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/ecotune/ecotune/internal/hostile"
)

// FuzzCheckAdapter feeds arbitrary bytes through the Go checks LoadAdapter runs before
// llama_adapter_lora_init, against the stories260K base's shapes (no C model needed):
// no input may panic, and an accepted adapter has complete pairs of positive rank that
// fit the base, which is what llama.cpp's loader assumes.
func FuzzCheckAdapter(f *testing.F) {
	base, err := os.ReadFile(storiesPath)
	if err != nil {
		f.Skipf("no base model: %v", err)
	}
	h, err := parseGGUFHeader(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		f.Fatal(err)
	}
	m := &Model{shapes: map[string][ggmlMaxDims]int64{}, meta: map[string]string{"general.architecture": "llama"}}
	for _, t := range h.tensors {
		m.shapes[t.name] = t.ne
	}
	valid, err := hostile.ValidAdapter(base)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	entries, err := hostile.Adapters(base)
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	for _, e := range entries {
		p, err := e.Write(dir)
		if err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ah, err := parseGGUFHeader(bytes.NewReader(in), int64(len(in)))
		if err != nil {
			if !errors.Is(err, ErrInvalidGGUF) {
				t.Fatalf("header error does not match ErrInvalidGGUF: %v", err)
			}
			return
		}
		rank, err := checkAdapter(ah, m)
		if err != nil {
			return
		}
		if rank < 1 {
			t.Fatalf("accepted an adapter of rank %d", rank)
		}
	})
}
