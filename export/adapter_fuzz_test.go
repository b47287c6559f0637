package export

import (
	"os"
	"testing"

	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/hostile"
	"github.com/ecotune/ecotune/internal/testenv"
)

// FuzzOpenAdapter feeds arbitrary bytes to the adapter reader merge and the exports
// use, then checks the result against the stories260K base: no input may panic, and
// an accepted adapter has pairs whose ranks agree, of finite alpha, that fit the base.
func FuzzOpenAdapter(f *testing.F) {
	base, err := os.ReadFile(testenv.StoriesPath())
	if err != nil {
		f.Skipf("no base model: %v", err)
	}
	bf, err := gguf.ParseBytes(base)
	if err != nil {
		f.Fatal(err)
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
		af, err := gguf.ParseBytes(in)
		if err != nil {
			return
		}
		a, err := readAdapter("fuzz.gguf", af)
		if err != nil {
			return
		}
		if err := a.CheckBase(bf); err != nil {
			return
		}
		for _, p := range a.Pairs {
			if p.Rank() < 1 {
				t.Fatalf("pair %s: rank %d accepted", p.Base, p.Rank())
			}
			if s := a.Scale(p, 1); s != s {
				t.Fatalf("pair %s: scale %v", p.Base, s)
			}
		}
	})
}
