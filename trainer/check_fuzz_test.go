package trainer

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/gguf"
)

// FuzzCheckModel mutates tiny models of every architecture: CheckModel must never
// panic, and a model it accepts has hyper-parameters LoadModel can size graphs by.
func FuzzCheckModel(f *testing.F) {
	dir := f.TempDir()
	for _, arch := range []string{"llama", "qwen2", "phi2", "phi3", "gemma2"} {
		p := filepath.Join(dir, arch+".gguf")
		spec := factory.Spec{Arch: arch, Embd: 8, Layers: 1, Heads: 2, HeadsKV: 1, FF: 16, VocabSize: 16, Type: gguf.TypeF16, Seed: 1}
		if arch == "phi2" {
			spec.HeadsKV = 2
		}
		if err := factory.Init(spec, p); err != nil {
			f.Fatalf("%s: %v", arch, err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		mf, err := gguf.ParseBytes(in)
		if err != nil {
			return
		}
		if err := CheckModel(mf, CheckAll); err != nil {
			return
		}
		hp, err := readHParams(mf.Meta)
		if err != nil {
			t.Fatalf("CheckModel accepted hyper-parameters readHParams refuses: %v", err)
		}
		if hp.Heads < 1 || hp.HeadsKV < 1 || hp.Layers < 1 || hp.Embd < 1 || hp.Heads%hp.HeadsKV != 0 {
			t.Fatalf("accepted %+v", hp)
		}
	})
}
