package convert_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/convert"
	"github.com/ecotune/ecotune/internal/testenv"
)

// TestConvertBadCheckpoints: each broken checkpoint gets one error line that
// names the file and what is wrong, and leaves nothing in the output folder.
func TestConvertBadCheckpoints(t *testing.T) {
	spm := testenv.Vocab(t, "llama-spm")
	good := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "ckpt")
		m := newHFModel("qwen2", 1)
		m.vocab = 32000
		m.write(t, dir, 2)
		writeSPMFrom(t, spm, dir)
		return dir
	}
	editConfig := func(t *testing.T, dir string, edit func(map[string]any)) {
		raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
		require.NoError(t, err)
		var c map[string]any
		require.NoError(t, json.Unmarshal(raw, &c))
		edit(c)
		raw, err = json.Marshal(c)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644))
	}
	cases := []struct {
		name    string
		breakIt func(t *testing.T, dir string)
		want    []string // substrings of the one-line error
	}{
		{"missing shard", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "model-00002-of-00002.safetensors")))
		}, []string{"model-00002-of-00002.safetensors", "missing", "model.safetensors.index.json"}},
		{"shape mismatch with config", func(t *testing.T, dir string) {
			editConfig(t, dir, func(c map[string]any) { c["intermediate_size"] = 80 })
		}, []string{"mlp.", "has shape", "config.json implies"}},
		{"unknown architecture", func(t *testing.T, dir string) {
			editConfig(t, dir, func(c map[string]any) { c["architectures"] = []string{"MambaForCausalLM"} })
		}, []string{"config.json", `"MambaForCausalLM" is not supported`}},
		{"tokenizer missing", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "tokenizer.model")))
		}, []string{"tokenizer missing", "tokenizer.model", "tokenizer.json"}},
		{"config key missing", func(t *testing.T, dir string) {
			editConfig(t, dir, func(c map[string]any) { delete(c, "hidden_size") })
		}, []string{"config.json", "hidden_size is missing"}},
		{"truncated shard", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model-00001-of-00002.safetensors")
			st, err := os.Stat(p)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(p, st.Size()-100))
		}, []string{"model-00001-of-00002.safetensors", "data_offsets"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := good(t)
			tc.breakIt(t, dir)
			outDir := t.TempDir()
			out := filepath.Join(outDir, "model.gguf")
			_, err := convert.Convert(context.Background(), convert.Options{Dir: dir, Out: out})
			require.Error(t, err)
			msg := err.Error()
			t.Log(msg)
			assert.NotContains(t, msg, "\n", "one line")
			for _, w := range tc.want {
				assert.Contains(t, msg, w)
			}
			left, _ := os.ReadDir(outDir)
			assert.Empty(t, left, "nothing is left in the output folder")
		})
	}
	// The unbroken checkpoint converts: the failures above are the edits'.
	_, err := convert.Convert(context.Background(), convert.Options{Dir: good(t), Out: filepath.Join(t.TempDir(), "ok.gguf")})
	require.NoError(t, err)
}
