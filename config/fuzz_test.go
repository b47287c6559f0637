package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ecotune/ecotune/internal/hostile"
)

// FuzzParse: no text may panic the loader; an error names the file, and whatever it
// accepts holds only known keys whose values pass the same check environment
// variables and flags get.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"lora.toml", "qlora.toml", "phi2.toml", "demo.toml"} {
		if b, err := os.ReadFile(filepath.Join("..", "configs", name)); err == nil {
			f.Add(b)
		}
	}
	dir := f.TempDir()
	for _, e := range hostile.Configs() {
		p, err := e.Write(dir)
		if err != nil {
			f.Fatal(err)
		}
		if b, err := os.ReadFile(p); err == nil && len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		cf, err := Parse("fuzz.toml", text)
		if err != nil {
			if len(err.Error()) < len("fuzz.toml") || err.Error()[:len("fuzz.toml")] != "fuzz.toml" {
				t.Fatalf("error does not start with the file name: %v", err)
			}
			return
		}
		for _, kv := range cf.Values() {
			k, ok := lookup(kv.Key)
			if !ok {
				t.Fatalf("accepted unknown key %q", kv.Key)
			}
			if err := checkText(k, kv.Value); err != nil && k.Kind != StringList {
				t.Fatalf("accepted %s = %q, which its own check refuses: %v", kv.Key, kv.Value, err)
			}
		}
	})
}
