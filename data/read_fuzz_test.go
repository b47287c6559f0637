package data

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ecotune/ecotune/internal/hostile"
)

// fuzzSeedLimit keeps seeds small: every execution reads the whole input, and the
// hostile corpus's bombs (a 100 MB line, 2 MB of brackets) are run by cmd/ecotune's
// TestHostileInputs instead.
const fuzzSeedLimit = 64 << 10

// addDataSeeds adds the hostile corpus's entries of extension ext that are small enough,
// and the extra seeds given.
func addDataSeeds(f *testing.F, ext string, extra ...string) {
	entries, err := hostile.Data()
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	for _, e := range entries {
		if e.Ext != ext {
			continue
		}
		if e.Large {
			continue
		}
		p, err := e.Write(dir)
		if err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) <= fuzzSeedLimit {
			f.Add(b)
		}
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
}

// fuzzRead writes in as one input file with extension ext and reads it as prepare does:
// it must never panic, and every example it yields must be valid UTF-8 (the cleaning
// replaces what is not).
func fuzzRead(t *testing.T, ext string, in []byte) {
	p := filepath.Join(t.TempDir(), "in"+ext)
	if err := os.WriteFile(p, in, 0o644); err != nil {
		t.Fatal(err)
	}
	exs, _, err := ReadExamples(context.Background(), []string{p}, ReadOptions{Workers: 1})
	if err != nil {
		if !strings.Contains(err.Error(), "in"+ext) {
			t.Fatalf("error does not name the file: %v", err)
		}
		return
	}
	for _, ex := range exs {
		if !utf8.ValidString(ex.Text) {
			t.Fatalf("example %v: text is not valid UTF-8: %q", ex.Source, ex.Text)
		}
		for _, m := range ex.Messages {
			if !utf8.ValidString(m.Content) {
				t.Fatalf("example %v: %s message is not valid UTF-8: %q", ex.Source, m.Role, m.Content)
			}
		}
	}
}

func FuzzReadJSONL(f *testing.F) {
	addDataSeeds(f, ".jsonl", `{"question":"Why?","answer":"Because."}`+"\n", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}`,
		strings.Repeat("[", 200)+strings.Repeat("]", 200))
	f.Fuzz(func(t *testing.T, in []byte) { fuzzRead(t, ".jsonl", in) })
}

func FuzzReadJSON(f *testing.F) {
	addDataSeeds(f, ".json", `[{"instruction":"Say hi","output":"hi"}]`, `{"train":[{"text":"a b c"}]}`,
		`{"train":`+strings.Repeat(`{"a":`, 100)+"1"+strings.Repeat("}", 101))
	f.Fuzz(func(t *testing.T, in []byte) { fuzzRead(t, ".json", in) })
}

func FuzzReadCSV(f *testing.F) {
	addDataSeeds(f, ".csv", "question,answer\n\"Why?\",\"Because \"\"so\"\".\"\n", "question,answer\n\"never closed,x\n")
	f.Fuzz(func(t *testing.T, in []byte) { fuzzRead(t, ".csv", in) })
}

func FuzzReadText(f *testing.F) {
	addDataSeeds(f, ".txt", "One paragraph.\n\nAnother one. With two sentences.\n", strings.Repeat("word ", 1000))
	f.Fuzz(func(t *testing.T, in []byte) { fuzzRead(t, ".txt", in) })
}

func FuzzReadParquet(f *testing.F) {
	addDataSeeds(f, ".parquet")
	f.Fuzz(func(t *testing.T, in []byte) { fuzzRead(t, ".parquet", in) })
}

func FuzzReadGzip(f *testing.F) {
	addDataSeeds(f, ".jsonl.gz")
	f.Fuzz(func(t *testing.T, in []byte) { fuzzRead(t, ".jsonl.gz", in) })
}
