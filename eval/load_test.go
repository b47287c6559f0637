package eval

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeFile writes content to name in dir and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func TestLoadExamplesByID(t *testing.T) {
	dir := t.TempDir()
	preds := writeFile(t, dir, "p.jsonl", `{"id": "b", "prediction": "two"}
{"id": "a", "prediction": "one"}
{"id": 7, "prediction": "seven"}
`)
	refs := writeFile(t, dir, "r.jsonl", "\xef\xbb\xbf"+`{"id": "a", "reference": "one"}`+"\r\n\r\n"+
		`{"id": 7, "references": ["seven", "7"]}`+"\n"+
		`{"id": "b", "references": ["two"], "extra": true}`)
	got, err := LoadExamples(preds, refs)
	require.NoError(t, err)
	assert.Equal(t, []Example{
		{ID: "b", Prediction: "two", References: []string{"two"}},
		{ID: "a", Prediction: "one", References: []string{"one"}},
		{ID: "7", Prediction: "seven", References: []string{"seven", "7"}},
	}, got, "predictions-file order, ids joined, numeric id as its text")
}

func TestLoadExamplesByPosition(t *testing.T) {
	dir := t.TempDir()
	preds := writeFile(t, dir, "p.jsonl", "{\"prediction\": \"x\"}\n{\"prediction\": \"\"}\n")
	refs := writeFile(t, dir, "r.jsonl", "{\"reference\": \"x\"}\n{\"references\": [\"y\"]}\n")
	got, err := LoadExamples(preds, refs)
	require.NoError(t, err)
	assert.Equal(t, []Example{
		{Prediction: "x", References: []string{"x"}},
		{Prediction: "", References: []string{"y"}},
	}, got)
}

func TestLoadExamplesSingleFile(t *testing.T) {
	dir := t.TempDir()
	both := writeFile(t, dir, "both.jsonl", `{"id": 1, "prediction": "p", "references": ["r1", "r2"]}
{"id": 2, "prediction": "q", "reference": "s"}`)
	got, err := LoadExamples(both, "")
	require.NoError(t, err)
	assert.Equal(t, []Example{
		{ID: "1", Prediction: "p", References: []string{"r1", "r2"}},
		{ID: "2", Prediction: "q", References: []string{"s"}},
	}, got)
}

func TestLoadExamplesErrors(t *testing.T) {
	cases := []struct {
		name        string
		preds, refs string // refs "" means single-file mode
		wantFile    string // "p" or "r": which file the error names
		wantLine    int
		wantText    string
	}{
		{"bad JSON", "{\"prediction\": \"x\"}\n{oops\n", "{\"reference\": \"x\"}\n", "p", 2, "invalid JSON record"},
		{"prediction not a string", "{\"prediction\": 3}\n", "{\"reference\": \"x\"}\n", "p", 1, "invalid JSON record"},
		{"missing prediction", "{\"id\": 1, \"text\": \"x\"}\n", "{\"id\": 1, \"reference\": \"x\"}\n", "p", 1, `missing "prediction"`},
		{"missing reference", "{\"prediction\": \"x\"}\n", "\n{\"answer\": \"x\"}\n", "r", 2, `missing "reference"`},
		{"both reference fields", "{\"prediction\": \"x\"}\n", "{\"reference\": \"x\", \"references\": [\"y\"]}\n", "r", 1, "both"},
		{"empty references", "{\"prediction\": \"x\"}\n", "{\"references\": []}\n", "r", 1, "empty"},
		{"bad id", "{\"id\": [1], \"prediction\": \"x\"}\n", "{\"reference\": \"x\"}\n", "p", 1, `"id" must be`},
		{"duplicate id", "{\"id\": \"a\", \"prediction\": \"x\"}\n{\"id\": \"a\", \"prediction\": \"y\"}\n", "{\"id\": \"a\", \"reference\": \"x\"}\n", "p", 2, "duplicate id \"a\" (first on line 1)"},
		{"mixed ids", "{\"id\": \"a\", \"prediction\": \"x\"}\n{\"prediction\": \"y\"}\n", "{\"reference\": \"x\"}\n", "p", 2, "some records have an id"},
		{"prediction without reference", "{\"id\": \"a\", \"prediction\": \"x\"}\n{\"id\": \"b\", \"prediction\": \"y\"}\n", "{\"id\": \"a\", \"reference\": \"x\"}\n", "p", 2, "no reference with id \"b\""},
		{"reference without prediction", "{\"id\": \"a\", \"prediction\": \"x\"}\n", "{\"id\": \"a\", \"reference\": \"x\"}\n{\"id\": \"c\", \"reference\": \"z\"}\n", "r", 2, "no prediction with id \"c\""},
		{"single file missing reference", "{\"prediction\": \"x\", \"reference\": \"x\"}\n{\"prediction\": \"y\"}\n", "", "p", 2, `missing "reference"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := writeFile(t, dir, "P.jsonl", c.preds)
			r := ""
			if c.refs != "" {
				r = writeFile(t, dir, "R.jsonl", c.refs)
			}
			_, err := LoadExamples(p, r)
			require.Error(t, err)
			var le *LineError
			require.True(t, errors.As(err, &le), "want a LineError, got %v", err)
			wantFile := p
			if c.wantFile == "r" {
				wantFile = r
			}
			assert.Equal(t, wantFile, le.File)
			assert.Equal(t, c.wantLine, le.Line)
			assert.True(t, errors.Is(err, ErrBadRecord))
			assert.Contains(t, err.Error(), c.wantText)
			assert.True(t, strings.HasPrefix(err.Error(), wantFile+":"), "message starts with FILE:LINE: %v", err)
		})
	}
}

func TestLoadExamplesFileErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadExamples(filepath.Join(dir, "missing.jsonl"), "")
	assert.True(t, errors.Is(err, os.ErrNotExist), "%v", err)

	empty := writeFile(t, dir, "empty.jsonl", "\n\n")
	_, err = LoadExamples(empty, "")
	assert.True(t, errors.Is(err, ErrEmptyCorpus), "%v", err)
	assert.Contains(t, err.Error(), empty)

	p := writeFile(t, dir, "p.jsonl", "{\"prediction\": \"x\"}\n{\"prediction\": \"y\"}\n")
	r := writeFile(t, dir, "r.jsonl", "{\"reference\": \"x\"}\n")
	_, err = LoadExamples(p, r)
	assert.True(t, errors.Is(err, ErrBadRecord), "%v", err)
	assert.Contains(t, err.Error(), "2 predictions but")

	withIDs := writeFile(t, dir, "ids.jsonl", "{\"id\": 1, \"reference\": \"x\"}\n{\"id\": 2, \"reference\": \"y\"}\n")
	_, err = LoadExamples(p, withIDs)
	assert.True(t, errors.Is(err, ErrBadRecord), "%v", err)
	assert.Contains(t, err.Error(), "has ids but")
}

func TestReadExamples(t *testing.T) {
	got, err := ReadExamples(strings.NewReader(`{"prediction": "é", "reference": "É"}`), "inline")
	require.NoError(t, err)
	assert.Equal(t, []Example{{Prediction: "é", References: []string{"É"}}}, got)
}
