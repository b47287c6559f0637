package eval

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadItems(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "items.jsonl")
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	items, err := LoadItems(write("\xef\xbb\xbf{\"id\":\"a\",\"prompt\":\"Q1\",\"reference\":\"A1\"}\r\n\n{\"id\":7,\"prompt\":\"\",\"references\":[\"x\",\"y\"]}"))
	require.NoError(t, err)
	assert.Equal(t, []Item{
		{ID: "a", Prompt: "Q1", References: []string{"A1"}},
		{ID: "7", Prompt: "", References: []string{"x", "y"}},
	}, items)

	for body, msg := range map[string]string{
		`{"prompt":"q"}`: `items.jsonl:1: bad record: missing "reference"`,
		"{\"prompt\":\"q\",\"reference\":\"r\"}\n{\"reference\":\"r\"}": `items.jsonl:2: bad record: missing "prompt"`,
		`{"prompt":"q","reference":"r","references":["s"]}`:             `has both`,
		`{"prompt":"q","references":[]}`:                                `non-empty list`,
		`not json`:                                                      `invalid JSON`,
		"\n\n":                                                          `no items`,
	} {
		_, err := LoadItems(write(body))
		require.Error(t, err, "%q", body)
		assert.Contains(t, err.Error(), msg, "%q", body)
	}
}
