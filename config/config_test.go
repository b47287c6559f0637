package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite configs/README.md's key table")

func TestEveryConfigFileLoads(t *testing.T) {
	files, err := filepath.Glob("../configs/*.toml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 4, "configs/ holds the LoRA, QLoRA, Phi-2 and demo files")
	for _, path := range files {
		f, err := Load(path)
		require.NoError(t, err, path)
		for _, key := range []string{"model.path", "lora.r", "training.learning_rate", "output.dir"} {
			_, ok := f.Get(key)
			assert.True(t, ok, "%s sets %s", path, key)
		}
	}
	f, err := Load("../configs/qlora.toml")
	require.NoError(t, err)
	v, _ := f.Get("lora.target_modules")
	assert.Equal(t, "all", v)
	v, _ = f.Get("model.dtype")
	assert.Equal(t, "q4_k", v)
	kv := f.Values()
	assert.Equal(t, "model.name", kv[0].Key, "values come in the order of Keys()")
	assert.Equal(t, "../configs/qlora.toml:6", kv[0].Source)
}

func TestMisspelledKeys(t *testing.T) {
	cases := []struct{ text, want string }{
		{"[lora]\nrank = 8\n", "x.toml:2: unknown key lora.rank (did you mean lora.r?)"},
		{"[lora]\nr = 8\nlora_alpa = 16\n", "x.toml:3: unknown key lora.lora_alpa (did you mean lora.lora_alpha?)"},
		{"[training]\n\nlearning_rat = 1e-4\n", "unknown key training.learning_rat (did you mean training.learning_rate?)"},
		{"[training]\nlr = 1e-4\n", "unknown key training.lr (did you mean training.learning_rate?)"},
		{"[lora]\nlearning_rate = 1e-4\n", "unknown key lora.learning_rate (did you mean training.learning_rate?)"},
		{"[model]\ntorch_dtype = \"float16\"\n", "did you mean model.dtype?"},
		{"[trainng]\nseed = 1\n", "unknown key trainng.seed (did you mean training.seed?)"},
		{"[lora]\nr = \"eight\"\n", "x.toml:2: lora.r: want an integer"},
		{"[lora]\ntarget_modules = \"q_proj\"\n", "lora.target_modules: want a list of strings"},
		{"seed = 1\n", "x.toml:1: seed must be a [section]"},
		{"[lora\nr = 1\n", "x.toml:1:"},
	}
	for _, c := range cases {
		_, err := Parse("x.toml", []byte(c.text))
		require.Error(t, err, c.text)
		assert.Contains(t, err.Error(), c.want, c.text)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	f, err := Parse("x.toml", []byte("[lora]\nr = 8\n"))
	require.NoError(t, err)
	require.NoError(t, f.ApplyEnv([]string{"ECOTUNE_LORA_R=32", "ECOTUNE_TRAINING_LEARNING_RATE=1e-4",
		"ECOTUNE_REQUIRE_TOOLS=1", "ECOTUNE_CACHE=/tmp/x", "HOME=/root", "ECOTUNE_LORA_TARGET_MODULES=q_proj,v_proj"}))
	v, _ := f.Get("lora.r")
	assert.Equal(t, "32", v)
	v, _ = f.Get("training.learning_rate")
	assert.Equal(t, "1e-4", v)
	v, _ = f.Get("lora.target_modules")
	assert.Equal(t, "q_proj,v_proj", v)
	assert.Equal(t, "ECOTUNE_LORA_R", f.Values()[0].Source)

	err = f.ApplyEnv([]string{"ECOTUNE_LORA_RANK=4"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ECOTUNE_LORA_RANK: unknown key lora.rank (did you mean lora.r?)")
	err = f.ApplyEnv([]string{"ECOTUNE_TRAINING_MAX_STEPS=many"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "training.max_steps: want an integer")
}

func TestEditDistance(t *testing.T) {
	assert.Equal(t, 0, editDistance("lora.r", "lora.r"))
	assert.Equal(t, 3, editDistance("kitten", "sitting"))
	assert.Equal(t, 6, editDistance("", "abcdef"))
}

// TestReadmeListsEveryKey keeps configs/README.md's key table equal to Keys().
func TestReadmeListsEveryKey(t *testing.T) {
	path := "../configs/README.md"
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	const begin, end = "<!-- keys:begin -->\n", "<!-- keys:end -->"
	text := string(b)
	i, j := strings.Index(text, begin), strings.Index(text, end)
	require.True(t, i >= 0 && j > i, "%s holds the markers", path)
	var tbl strings.Builder
	tbl.WriteString("| key | type | meaning |\n| --- | --- | --- |\n")
	for _, k := range Keys() {
		tbl.WriteString("| `" + k.Name + "` | " + k.Kind.String() + " | " + strings.ReplaceAll(k.Doc, "|", "\\|") + " |\n")
	}
	want := text[:i+len(begin)] + tbl.String() + text[j:]
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
		return
	}
	assert.Equal(t, want, text, "run `go test ./config -run TestReadmeListsEveryKey -update`")
}
