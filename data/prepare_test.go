package data

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func prepare(t *testing.T, cfg Config) Manifest {
	t.Helper()
	man, err := Prepare(context.Background(), cfg)
	require.NoError(t, err)
	return man
}

// outputBytes reads every file Prepare wrote, by name.
func outputBytes(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = b
	}
	return out
}

func loadSplits(t *testing.T, dir string) map[Split][]PreparedExample {
	t.Helper()
	out := map[Split][]PreparedExample{}
	for _, s := range Splits() {
		exs, err := LoadPrepared(filepath.Join(dir, SplitFile(s)))
		require.NoError(t, err)
		out[s] = exs
	}
	return out
}

func TestPrepareCorruptLinesAreSkippedByLineNumber(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	var wantBad []int
	corruptions := []string{
		`{"question": "truncated`,
		`not json at all`,
		`{"question": 12, "answer": "A"}`,
		`{"question": "Q only"}`,
		`{"question": "", "answer": "A"}`,
		`["an", "array"]`,
		`{"messages": "not a list"}`,
		`{"messages": [{"role": "user", "content": "no answer"}]}`,
		`{"answer": "A", "unrelated": 1}`,
		`{"question": "Q", "answer": {"nested": true}}`,
	}
	for line := 1; line <= 100; line++ {
		if line%10 == 0 {
			b.WriteString(corruptions[line/10-1] + "\n")
			wantBad = append(wantBad, line)
			continue
		}
		fmt.Fprintf(&b, `{"question": "Question number %d?", "answer": "Answer %d."}`+"\n", line, line)
	}
	in := writeFile(t, dir, "in/data.jsonl", []byte(b.String()))
	var logged []int
	man := prepare(t, Config{
		Inputs: []string{in}, OutputDir: filepath.Join(dir, "out"), Val: 0.1, Test: 0.1, Seed: 1,
		ReadOptions: ReadOptions{OnSkip: func(s Skip) { logged = append(logged, s.Source.Line) }},
	})

	assert.Equal(t, wantBad, logged, "OnSkip reports each bad line, in order")
	assert.Equal(t, 100, man.Records)
	assert.Equal(t, 90, man.Kept)
	assert.Equal(t, 90, man.Counts.Total())
	assert.Equal(t, 10, man.SkippedTotal())
	assert.Equal(t, map[Reason]int{
		ReasonMalformedJSON: 2, ReasonWrongType: 4, ReasonMissingField: 1,
		ReasonEmptyField: 1, ReasonNoAssistantTurn: 1, ReasonUnknownShape: 1,
	}, man.Skipped)

	// skipped.jsonl has the same lines, each with file, line and reason.
	f, err := os.Open(filepath.Join(dir, "out", SkippedName))
	require.NoError(t, err)
	defer f.Close()
	var fromFile []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var s Skip
		require.NoError(t, json.Unmarshal(sc.Bytes(), &s))
		assert.Equal(t, in, filepath.FromSlash(s.Source.File))
		assert.NotEmpty(t, s.Reason)
		assert.NotEmpty(t, s.Detail)
		fromFile = append(fromFile, s.Source.Line)
	}
	assert.Equal(t, wantBad, fromFile)

	// Every good line is in exactly one split.
	seen := map[int]bool{}
	for _, exs := range loadSplits(t, filepath.Join(dir, "out")) {
		for _, e := range exs {
			assert.False(t, seen[e.Source.Line])
			seen[e.Source.Line] = true
		}
	}
	assert.Len(t, seen, 90)
}

// writeDataset writes a small dataset of several files and shapes, with
// exact and near duplicates inside and across files, in the given order.
func writeDataset(t *testing.T, dir string, order []int) {
	t.Helper()
	files := []struct {
		name    string
		content string
	}{
		{"qa.jsonl", `{"id":"q1","question":"What is the greenhouse effect?","answer":"Warming by trapped infrared radiation."}
{"id":"q2","question":"What is CO2?","answer":"Carbon dioxide."}
{"id":"q3","question":"what is co2","answer":"carbon dioxide"}
{"id":"q4","question":"Why recycle?","answer":"To save <b>resources</b> &amp; energy."}
`},
		{"chats.jsonl", `{"id":"c1","messages":[{"role":"system","content":"You are an environmental assistant."},{"role":"user","content":"Is solar power clean?"},{"role":"assistant","content":"It emits no CO2 while running."},{"role":"user","content":"And wind?"},{"role":"assistant","content":"Wind is similar."}]}
{"id":"c2","messages":[{"role":"user","content":"What is CO2?"},{"role":"assistant","content":"Carbon dioxide."}]}
`},
		{"extra/alpaca.json", `[{"instruction":"Define biodiversity.","input":"","output":"The variety of life."},
 {"instruction":"Summarise.","input":"Oceans absorb heat.","output":"Oceans warm."}]`},
		{"extra/pairs.csv", "question,answer\n\"Is peat a carbon store?\",\"Yes, a large one.\"\n\"What, exactly, is a watershed?\",\"Land draining to one river.\"\n"},
	}
	for _, i := range order {
		writeFile(t, dir, files[i].name, []byte(files[i].content))
	}
	for i := range 40 {
		writeFile(t, dir, fmt.Sprintf("bulk/part-%02d.jsonl", i%3), nil)
	}
	var b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&b, `{"question":"Bulk question %d about rivers?","answer":"Bulk answer %d."}`+"\n", i%150, i%150)
	}
	writeFile(t, dir, "bulk/part-00.jsonl", []byte(b.String()))
}

func TestPrepareIsDeterministic(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	writeDataset(t, "data", []int{0, 1, 2, 3})
	cfg := func(out string, workers int) Config {
		return Config{
			Inputs: []string{"data"}, OutputDir: out, Template: "llama3", Seed: 42, Val: 0.1, Test: 0.1,
			Augment: 2, Tokenizer: byteTokenizer{}, MaxTokens: 4096, AddBOS: true, Version: "test",
			ReadOptions: ReadOptions{Workers: workers},
		}
	}
	prepare(t, cfg("out1", 0))
	prepare(t, cfg("out2", 1))
	want := outputBytes(t, "out1")
	assert.Equal(t, []string{"manifest.json", "skipped.jsonl", "test.jsonl", "train.jsonl", "val.jsonl"}, keys(want))
	assert.Equal(t, want, outputBytes(t, "out2"), "same inputs and seed, different output dir and worker count")

	// Files created in another order (another directory listing order,
	// other inode order) give the same bytes.
	require.NoError(t, os.RemoveAll("data"))
	writeDataset(t, "data", []int{3, 1, 2, 0})
	prepare(t, cfg("out3", 3))
	assert.Equal(t, want, outputBytes(t, "out3"))

	// The same files named in another order on the command line too.
	c := cfg("out4", 2)
	c.Inputs = []string{"data/extra", "data/qa.jsonl", "data/bulk", "data/chats.jsonl"}
	prepare(t, c)
	assert.Equal(t, want, outputBytes(t, "out4"))

	// A different seed changes the split.
	c = cfg("out5", 0)
	c.Seed = 43
	prepare(t, c)
	assert.NotEqual(t, want["train.jsonl"], outputBytes(t, "out5")["train.jsonl"])

	// No temporary files are left behind.
	for _, d := range []string{"out1", "out3"} {
		for name := range outputBytes(t, d) {
			assert.False(t, strings.HasPrefix(name, "."), name)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sortStrings(ks)
	return ks
}

func TestPrepareNoExampleInTwoSplits(t *testing.T) {
	dir := t.TempDir()
	// 300 base examples, each written three times with case, whitespace
	// and punctuation changes that normalisation folds away.
	var b strings.Builder
	for i := range 300 {
		q, a := fmt.Sprintf("How does process %d affect the climate?", i), fmt.Sprintf("Process %d warms it.", i)
		fmt.Fprintf(&b, `{"question":%q,"answer":%q,"id":"%d-a"}`+"\n", q, a, i)
		fmt.Fprintf(&b, `{"question":%q,"answer":%q,"id":"%d-b"}`+"\n", strings.ToUpper(q), "  "+a+"  ", i)
		fmt.Fprintf(&b, `{"question":%q,"answer":%q,"id":"%d-c"}`+"\n", strings.ReplaceAll(q, " ", "  ")+"!!", strings.TrimSuffix(a, "."), i)
	}
	in := writeFile(t, dir, "dups.jsonl", []byte(b.String()))

	t.Run("dedup off: variants kept, never split apart", func(t *testing.T) {
		out := filepath.Join(dir, "none")
		man := prepare(t, Config{Inputs: []string{in}, OutputDir: out, Seed: 7, Val: 0.2, Test: 0.2, Dedup: DedupNone})
		assert.Equal(t, 900, man.Kept)
		splitOf := map[string]Split{}
		for s, exs := range loadSplits(t, out) {
			for _, e := range exs {
				base, _, _ := strings.Cut(e.ID, "-")
				if prev, ok := splitOf[base]; ok {
					assert.Equal(t, prev, s, "variants of example %s in two splits", base)
				}
				splitOf[base] = s
			}
		}
		assert.Len(t, splitOf, 300)
	})
	t.Run("exact dedup keeps the variants", func(t *testing.T) {
		man := prepare(t, Config{Inputs: []string{in}, OutputDir: filepath.Join(dir, "exact"), Seed: 7, Dedup: DedupExact})
		assert.Equal(t, 900, man.Kept)
	})
	t.Run("normalized dedup keeps the first of each", func(t *testing.T) {
		out := filepath.Join(dir, "norm")
		man := prepare(t, Config{Inputs: []string{in}, OutputDir: out, Seed: 7, Val: 0.2, Test: 0.2})
		assert.Equal(t, DedupNormalized, man.Dedup)
		assert.Equal(t, 300, man.Kept)
		assert.Equal(t, 600, man.Skipped[ReasonDuplicate])
		n := 0
		for _, exs := range loadSplits(t, out) {
			for _, e := range exs {
				assert.True(t, strings.HasSuffix(e.ID, "-a"), e.ID)
				n++
			}
		}
		assert.Equal(t, 300, n)
		// 0.6/0.2/0.2 of 300, within sampling noise.
		assert.InDelta(t, 180, man.Counts.Train, 30)
		assert.InDelta(t, 60, man.Counts.Val, 25)
		assert.InDelta(t, 60, man.Counts.Test, 25)
	})
}

func TestPrepareOutputLines(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "a.jsonl", []byte(
		`{"id":"one","question":"What is CO2?","answer":"Carbon dioxide."}`+"\n"+
			`{"id":"two","messages":[{"role":"user","content":"U1"},{"role":"assistant","content":"A1"},{"role":"user","content":"U2"},{"role":"assistant","content":"A2 \"quoted\" <tag>"}]}`+"\n"+
			`{"id":"three","text":"Some corpus text."}`+"\n"))
	out := filepath.Join(dir, "out")
	man := prepare(t, Config{Inputs: []string{in}, OutputDir: out, Template: "chatml", Tokenizer: byteTokenizer{}, AddBOS: true, ReadOptions: ReadOptions{KeepHTML: true}})
	assert.Equal(t, 3, man.Counts.Train)
	assert.Equal(t, "chatml", man.Template)
	require.Len(t, man.Inputs, 1)
	assert.Len(t, man.Inputs[0].SHA256, 64)
	assert.Equal(t, 3, man.Inputs[0].Records)

	raw, err := os.ReadFile(filepath.Join(out, "train.jsonl"))
	require.NoError(t, err)
	lines := bytes.SplitAfter(raw, []byte("\n"))
	lines = lines[:len(lines)-1] // after the last newline
	require.Len(t, lines, 3)
	exs, err := LoadPrepared(filepath.Join(out, "train.jsonl"))
	require.NoError(t, err)
	for i, e := range exs {
		// Read back and written again through encoding/json, each line is
		// the same bytes.
		assert.Equal(t, string(lines[i]), encodeLine(t, e))
		assert.Equal(t, SplitTrain, e.Split)
		assert.Equal(t, "chatml", e.Template)
		assert.False(t, e.Augmented)
		assert.Equal(t, Rendered(e.Segments), e.Text)
		enc2, err := e.Encode(byteTokenizer{}, EncodeOptions{AddBOS: true})
		require.NoError(t, err)
		assert.Equal(t, enc2.Len(), e.Tokens)
	}
	one, two, three := exs[0], exs[1], exs[2]
	assert.Equal(t, "one", one.ID)
	assert.Equal(t, Source{File: filepath.ToSlash(in), Line: 1, Row: 1}, one.Source)
	assert.Equal(t, "<|im_start|>user\nWhat is CO2?<|im_end|>\n<|im_start|>assistant\n", one.Prompt)
	assert.Equal(t, "Carbon dioxide.<|im_end|>", one.Completion)
	assert.Empty(t, two.Prompt, "multi-turn has no single prompt/completion split")
	assert.Equal(t, ShapeChat, two.Shape)
	assert.Contains(t, two.Text, "A2 \"quoted\" <tag>")
	assert.Equal(t, "Some corpus text.", three.Text)
	assert.Equal(t, []Segment{{Text: "Some corpus text.", Train: true}}, three.Segments)
}

func TestPrepareAugmentsTrainOnly(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, `{"question":"Why does example %d matter?","answer":"Because %d."}`+"\n", i, i)
	}
	in := writeFile(t, dir, "a.jsonl", []byte(b.String()))
	out := filepath.Join(dir, "out")
	man := prepare(t, Config{Inputs: []string{in}, OutputDir: out, Seed: 3, Val: 0.2, Test: 0.2, Augment: 2})
	assert.Equal(t, 2*man.Counts.Train/3, man.Augmented)
	splits := loadSplits(t, out)
	for _, s := range []Split{SplitVal, SplitTest} {
		for _, e := range splits[s] {
			assert.False(t, e.Augmented)
		}
	}
	var orig PreparedExample
	aug := 0
	for _, e := range splits[SplitTrain] {
		if !e.Augmented {
			orig = e
			continue
		}
		aug++
		assert.True(t, strings.HasPrefix(e.ID, orig.ID+"-aug"), e.ID)
		assert.NotEqual(t, orig.Prompt, e.Prompt, "a variant asks differently")
		assert.Equal(t, orig.Completion, e.Completion, "and keeps the answer")
	}
	assert.Equal(t, man.Augmented, aug)

	man0 := prepare(t, Config{Inputs: []string{in}, OutputDir: filepath.Join(dir, "off"), Seed: 3, Val: 0.2, Test: 0.2})
	assert.Zero(t, man0.Augmented, "augmentation is off by default")
}

func TestPrepareTokenLimit(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "a.jsonl", []byte(
		`{"question":"short","answer":"ok"}`+"\n"+
			`{"question":"`+strings.Repeat("long ", 100)+`","answer":"ok"}`+"\n"))
	man := prepare(t, Config{Inputs: []string{in}, OutputDir: filepath.Join(dir, "drop"), Tokenizer: byteTokenizer{}, MaxTokens: 100})
	assert.Equal(t, 1, man.Kept)
	assert.Equal(t, 1, man.Skipped[ReasonTooLong])
	man = prepare(t, Config{Inputs: []string{in}, OutputDir: filepath.Join(dir, "left"), Tokenizer: byteTokenizer{}, MaxTokens: 100, Truncation: TruncateLeft})
	assert.Equal(t, 2, man.Kept, "truncating policies keep the example for the trainer")

	_, err := Prepare(context.Background(), Config{Inputs: []string{in}, OutputDir: filepath.Join(dir, "x"), MaxTokens: 100})
	assert.ErrorContains(t, err, "tokenizer")
}

func TestPrepareFailureKeepsOldOutputs(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "in/good.jsonl", []byte(`{"question":"Q","answer":"A"}`+"\n"))
	out := filepath.Join(dir, "out")
	prepare(t, Config{Inputs: []string{good}, OutputDir: out})
	before := outputBytes(t, out)

	writeFile(t, dir, "in/zbad.parquet", []byte("PAR1 but not really"))
	_, err := Prepare(context.Background(), Config{Inputs: []string{filepath.Join(dir, "in")}, OutputDir: out})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "zbad.parquet")
	assert.Equal(t, before, outputBytes(t, out), "outputs untouched, no temporary files left")
}

func TestPrepareProgressAndCancel(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, `{"question":"Q%d","answer":"%s"}`+"\n", i, strings.Repeat("x", 1000))
	}
	in := writeFile(t, dir, "a.jsonl.gz", gzipBytes(t, []byte(b.String())))
	st, err := os.Stat(in)
	require.NoError(t, err)
	var last, total int64
	calls := 0
	prepare(t, Config{Inputs: []string{in}, OutputDir: filepath.Join(dir, "out"), ReadOptions: ReadOptions{
		Progress: func(read, tot int64) {
			assert.GreaterOrEqual(t, read, last, "progress never goes back")
			last, total = read, tot
			calls++
		},
	}})
	assert.Equal(t, st.Size(), total)
	assert.Equal(t, st.Size(), last, "the last report is complete")
	assert.GreaterOrEqual(t, calls, 1)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Prepare(ctx, Config{Inputs: []string{in}, OutputDir: filepath.Join(dir, "cancelled")})
	assert.ErrorIs(t, err, context.Canceled)
	// An interrupted run leaves no temporary files behind.
	left, _ := filepath.Glob(filepath.Join(dir, "cancelled", ".*"))
	assert.Empty(t, left)
}

func TestPrepareConfigErrors(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "a.jsonl", []byte(`{"question":"Q","answer":"A"}`+"\n"))
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"fractions", Config{Val: 0.7, Test: 0.5}, "fractions"},
		{"template", Config{Template: "nope"}, "unknown template"},
		{"dedup", Config{Dedup: "fuzzy"}, "dedup"},
		{"shape", Config{ReadOptions: ReadOptions{Shape: "dpo"}}, "shape"},
		{"no output", Config{OutputDir: "-"}, "output directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Inputs = []string{in}
			if tc.cfg.OutputDir == "" {
				tc.cfg.OutputDir = filepath.Join(dir, "out")
			} else {
				tc.cfg.OutputDir = ""
			}
			_, err := Prepare(context.Background(), tc.cfg)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}
