package data

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPreparedReadsTheOldForm prepares testdata/prepared_v1/in as the files
// beside it were prepared before segments became [length, flags] (with the
// same configs): both forms must load to the same examples, so a trainer
// reads old and new files alike.
func TestPreparedReadsTheOldForm(t *testing.T) {
	in := []string{"testdata/prepared_v1/in"} // as the old files were made: their source paths say so
	for old, cfg := range map[string]Config{
		"v1_chatml_tokens.jsonl":  {Inputs: in, Template: "chatml", Tokenizer: byteTokenizer{}, AddBOS: true},
		"v1_llama2_augment.jsonl": {Inputs: in, Template: "llama2", Augment: 2},
	} {
		t.Run(old, func(t *testing.T) {
			cfg.OutputDir = t.TempDir()
			prepare(t, cfg)
			newPath := filepath.Join(cfg.OutputDir, "train.jsonl")
			oldPath := filepath.Join("testdata/prepared_v1", old)
			want, err := LoadPrepared(oldPath)
			require.NoError(t, err)
			got, err := LoadPrepared(newPath)
			require.NoError(t, err)
			require.NotEmpty(t, want)
			assert.Equal(t, want, got)

			oldBytes, err := os.ReadFile(oldPath)
			require.NoError(t, err)
			newBytes, err := os.ReadFile(newPath)
			require.NoError(t, err)
			assert.Less(t, 2*len(newBytes), len(oldBytes)+len(oldBytes)/4, "the new form writes the text about once, not three times")
			assert.NotContains(t, string(newBytes), `"prompt":`)

			// A line read and written again is the same line.
			lines := bytes.SplitAfter(newBytes, []byte("\n"))
			for i, p := range got {
				assert.Equal(t, string(lines[i]), encodeLine(t, p))
			}
		})
	}
}

// encodeLine is p as encoding/json writes it without HTML escaping: the
// bytes of its line in a prepared file.
func encodeLine(t *testing.T, p PreparedExample) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(p))
	return buf.String()
}

func TestPreparedLineFields(t *testing.T) {
	p := PreparedExample{
		ID: "x", Source: Source{File: "a.jsonl", Line: 2, Row: 2}, Split: SplitVal, Shape: ShapeQA, Template: "chatml",
		Text: "<|u|>Qé?<|a|>A\u2028\"!\"<|e|>\n",
		Segments: []Segment{
			{Text: "<|u|>", Special: true}, {Text: "Qé?"}, {Text: "<|a|>", Special: true},
			{Text: "A\u2028\"!\"", Train: true}, {Text: "<|e|>", Train: true, Special: true}, {Text: "\n", Special: true},
		},
		Tokens: 12,
	}
	b := encodeLine(t, p)
	assert.Equal(t, `{"id":"x","source":{"file":"a.jsonl","line":2,"row":2},"split":"val","shape":"qa","template":"chatml","augmented":false,`+
		`"text":"<|u|>Qé?<|a|>A\u2028\"!\"<|e|>\n","segments":[[5,2],[4,0],[5,2],[7,1],[5,3],[1,2]],"tokens":12}`+"\n", b)
	var back PreparedExample
	require.NoError(t, json.Unmarshal([]byte(b), &back))
	want := p
	want.Prompt, want.Completion = "<|u|>Qé?<|a|>", "A\u2028\"!\"<|e|>"
	assert.Equal(t, want, back, "Prompt and Completion are derived from the segments")

	p.Text = "something else"
	_, err := json.Marshal(p)
	assert.ErrorContains(t, err, "not its segments joined")

	// A template that splits a rune writes invalid UTF-8 pieces: JSON
	// turns each bad byte into U+FFFD, and the lengths follow.
	split := PreparedExample{Text: "é", Segments: []Segment{{Text: "\xc3"}, {Text: "\xa9", Train: true}}}
	require.NoError(t, json.Unmarshal([]byte(encodeLine(t, split)), &back))
	assert.Equal(t, []Segment{{Text: "\ufffd"}, {Text: "\ufffd", Train: true}}, back.Segments)
}

func TestPreparedLineRejectsBadSegments(t *testing.T) {
	head := `{"id":"x","source":{"file":"a","row":1},"split":"train","shape":"qa","template":"chatml","augmented":false,`
	for _, tc := range []struct{ name, rest, err string }{
		{"past the end", `"text":"abc","segments":[[2,0],[2,1]]}`, "segment 1: want [length, flags]"},
		{"short of the end", `"text":"abc","segments":[[2,1]]}`, "cover 2 bytes, the text has 3"},
		{"inside a character", `"text":"é","segments":[[1,0],[1,1]]}`, "inside a character"},
		{"unknown flags", `"text":"a","segments":[[1,4]]}`, "flags 0–3"},
		{"negative length", `"text":"a","segments":[[-1,0],[2,1]]}`, "lengths ≥ 0"},
		{"one number", `"text":"a","segments":[[1]]}`, "[length, flags]"},
		{"three numbers", `"text":"a","segments":[[1,0,0]]}`, "[length, flags]"},
		{"not an array", `"text":"a","segments":{"a":1}}`, "want an array"},
		{"two forms", `"text":"ab","segments":[[1,0],{"text":"b","train":true}]}`, "mix"},
		{"no segments", `"text":"ab","segments":[]}`, "without segments"},
		{"null segments", `"text":"ab","segments":null}`, "without segments"},
		{"leading zero", `"text":"ab","segments":[[02,1]]}`, "invalid character"},
		{"trailing comma", `"text":"ab","segments":[[2,1],]}`, "invalid character"},
	} {
		var p PreparedExample
		assert.ErrorContains(t, json.Unmarshal([]byte(head+tc.rest), &p), tc.err, tc.name)
	}

	// ScanPrepared names the file and line.
	path := filepath.Join(t.TempDir(), "bad.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(head+`"text":"abc","segments":[[2,1]]}`+"\n"), 0o644))
	_, err := LoadPrepared(path)
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "bad.jsonl:1"), err.Error())
}
