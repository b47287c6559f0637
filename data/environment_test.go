package data

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkManifestAddsUp checks the manifest's counts against each other and
// against the files on disk.
func checkManifestAddsUp(t *testing.T, out string, man Manifest) {
	t.Helper()
	assert.Equal(t, man.Records, man.Kept+man.SkippedTotal(), "every record is kept or skipped")
	assert.Equal(t, man.Kept+man.Augmented, man.Counts.Total())
	inputs := 0
	for _, in := range man.Inputs {
		inputs += in.Records
		assert.Len(t, in.SHA256, 64, in.Path)
	}
	assert.Equal(t, man.Records, inputs)
	lines := map[string]int{}
	for _, o := range man.Outputs {
		lines[o.File] = o.Lines
		assert.Equal(t, o.Lines, countLines(t, filepath.Join(out, o.File)), o.File)
	}
	assert.Equal(t, man.Counts.Train, lines["train.jsonl"])
	assert.Equal(t, man.Counts.Val, lines["val.jsonl"])
	assert.Equal(t, man.Counts.Test, lines["test.jsonl"])
	assert.Equal(t, man.SkippedTotal(), lines[SkippedName])

	onDisk, err := LoadManifest(out)
	require.NoError(t, err)
	assert.Equal(t, man, onDisk)
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return bytes.Count(b, []byte("\n"))
}

// nonBlankLines counts the records of a JSONL file.
func nonBlankLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			n++
		}
	}
	require.NoError(t, sc.Err())
	return n
}

func TestPrepareEnvironmentFormat(t *testing.T) {
	// A small copy of data/environment's format: Q&A with topic and id,
	// and chats with role/content messages.
	dir := t.TempDir()
	writeFile(t, dir, "environment/qa.jsonl", []byte(
		`{"id": "qa-0001", "topic": "climate", "question": "What is the greenhouse effect?", "answer": "Warming of a planet's surface by gases that absorb infrared radiation."}
{"id": "qa-0002", "topic": "energy", "question": "What is a heat pump?", "answer": "A device that moves heat from a cold place to a warm one."}
{"id": "qa-0003", "topic": "water", "question": "What is a watershed?", "answer": "An area of land that drains to one river or lake."}
`))
	writeFile(t, dir, "environment/chats.jsonl", []byte(
		`{"id": "chat-0001", "topic": "waste", "messages": [{"role": "system", "content": "You are an environmental science assistant."}, {"role": "user", "content": "Is glass recyclable?"}, {"role": "assistant", "content": "Yes, glass can be recycled many times."}, {"role": "user", "content": "Without loss of quality?"}, {"role": "assistant", "content": "Mostly, if it is sorted by colour."}]}
{"id": "chat-0002", "topic": "climate", "messages": [{"role": "user", "content": "What is CO2e?"}, {"role": "assistant", "content": "Carbon dioxide equivalent, a common unit for greenhouse gases."}]}
`))
	writeFile(t, dir, "environment/LICENSE", []byte("CC-BY-4.0\n"))
	out := filepath.Join(dir, "out")
	man := prepare(t, Config{Inputs: []string{filepath.Join(dir, "environment")}, OutputDir: out, Template: "phi3", Seed: 42})
	assert.Equal(t, 5, man.Records)
	assert.Equal(t, 5, man.Counts.Train)
	require.Len(t, man.Inputs, 2, "the LICENSE file is not data")
	checkManifestAddsUp(t, out, man)

	exs, err := LoadPrepared(filepath.Join(out, "train.jsonl"))
	require.NoError(t, err)
	ids := map[string]PreparedExample{}
	for _, e := range exs {
		ids[e.ID] = e
	}
	require.Contains(t, ids, "qa-0002")
	assert.Equal(t, "A device that moves heat from a cold place to a warm one.<|end|>", ids["qa-0002"].Completion)
	require.Contains(t, ids, "chat-0001")
	assert.Equal(t, ShapeChat, ids["chat-0001"].Shape)
}

func TestPrepareEnvironmentDataset(t *testing.T) {
	env := "environment"
	st, err := os.Stat(env)
	if err != nil || !st.IsDir() {
		t.Skip("data/environment is not there yet")
	}
	files, err := expandInputs([]string{env}, "", "")
	if err != nil {
		t.Skipf("data/environment holds no data yet: %v", err)
	}
	out := t.TempDir()
	man := prepare(t, Config{Inputs: []string{env}, OutputDir: out, Template: "chatml", Seed: 42, Val: 0.05, Test: 0.05})
	checkManifestAddsUp(t, out, man)
	records := 0
	for _, f := range files {
		if f.format == FormatJSONL {
			records += nonBlankLines(t, f.path)
		}
	}
	assert.Equal(t, records, man.Records, "one record per JSONL line")
	assert.Greater(t, man.Kept, 0)
	assert.Greater(t, man.Counts.Train, man.Counts.Val+man.Counts.Test)
	for reason, n := range man.Skipped {
		t.Logf("data/environment: %d skipped as %s", n, reason)
	}
}
