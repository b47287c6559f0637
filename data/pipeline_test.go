package data

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPrepareAcrossRecycledChunks runs enough records through Prepare that
// chunks (item arrays, input arenas, line buffers) are recycled many times,
// with one record larger than a chunk's arena: every line must still hold
// its own record, and the output must not depend on the worker count.
func TestPrepareAcrossRecycledChunks(t *testing.T) {
	dir := t.TempDir()
	const n = 12000 // about six chunks of chunkItems, more than one worker keeps in flight
	var b strings.Builder
	for i := range n {
		switch {
		case i == 5000:
			fmt.Fprintf(&b, `{"question":"Record %d, the long one?","answer":"%s"}`+"\n", i, strings.Repeat("long ", chunkBytes/4))
		case i%500 == 499:
			b.WriteString(`{"question": "broken` + "\n")
		case i%2 == 0:
			fmt.Fprintf(&b, `{"question":"Record %d: why?","answer":"Because %d — café."}`+"\n", i, i)
		default:
			fmt.Fprintf(&b, `{"messages":[{"role":"user","content":"Record %d, <b>hello</b>"},{"role":"assistant","content":"Reply %d"}]}`+"\n", i, i)
		}
	}
	in := writeFile(t, dir, "many.jsonl", []byte(b.String()))

	var want map[string][]byte
	for _, workers := range []int{1, 2, 5} {
		out := filepath.Join(dir, fmt.Sprintf("out%d", workers))
		man := prepare(t, Config{Inputs: []string{in}, OutputDir: out, Seed: 1, Val: 0.1, Test: 0.1, ReadOptions: ReadOptions{Workers: workers}})
		assert.Equal(t, n, man.Records)
		assert.Equal(t, n/500, man.Skipped[ReasonMalformedJSON])
		got := outputBytes(t, out)
		if want == nil {
			want = got
			kept := 0
			for _, exs := range loadSplits(t, out) {
				for _, e := range exs {
					kept++
					// Line numbers are 1-based, records 0-based.
					require.Contains(t, e.Text, fmt.Sprintf("Record %d", e.Source.Line-1), "line %d", e.Source.Line)
				}
			}
			assert.Equal(t, man.Kept, kept)
			continue
		}
		assert.Equal(t, want, got, "with %d workers", workers)
	}
}
