package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/config"
)

func TestEveryConfigKeyHasATrainFlag(t *testing.T) {
	flags := map[string]bool{}
	for _, f := range trainCommand().Flags {
		for _, n := range f.Names() {
			flags[n] = true
		}
	}
	flagOf := trainFlagOf()
	for _, k := range config.Keys() {
		name, ok := flagOf[k.Name]
		require.True(t, ok, "config key %s has no flag", k.Name)
		assert.True(t, flags[name], "config key %s maps to --%s, which train lacks", k.Name, name)
	}
	assert.Len(t, flagOf, len(config.Keys()))
}

// TestPrintConfigLayers checks defaults ← file ← environment ← flags, and that the
// printed configuration loads back.
func TestPrintConfigLayers(t *testing.T) {
	t.Setenv("ECOTUNE_TRAINING_LEARNING_RATE", "0.0005")
	t.Setenv("ECOTUNE_LORA_R", "4") // the flag below wins
	code, out, stderr := runCLI(t, "train", "--config", "../../configs/qlora.toml", "--lora.r", "32", "--print-config")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "r = 32\n")                          // flag
	assert.Contains(t, out, "learning_rate = 0.0005\n")          // environment
	assert.Contains(t, out, "dtype = \"q4_k\"\n")                // file
	assert.Contains(t, out, "target_modules = [\"all\"]\n")      // file, a list
	assert.Contains(t, out, "val_split = 0.1\n")                 // default
	assert.Contains(t, out, "path = \"models/base-f16.gguf\"\n") // file
	p := filepath.Join(t.TempDir(), "printed.toml")
	require.NoError(t, os.WriteFile(p, []byte(out), 0o644))
	f, err := config.Load(p)
	require.NoError(t, err, out)
	v, _ := f.Get("lora.r")
	assert.Equal(t, "32", v)
}

func TestConfigErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.toml")
	require.NoError(t, os.WriteFile(p, []byte("[lora]\nrank = 8\n"), 0o644))
	code, _, stderr := runCLI(t, "train", "--config", p, "--print-config")
	assert.Equal(t, exitError, code, "a bad file is an error, not a usage error")
	assert.Contains(t, stderr, "bad.toml:2: unknown key lora.rank (did you mean lora.r?)")

	t.Setenv("ECOTUNE_TRAINING_STEPS", "10")
	code, _, stderr = runCLI(t, "train", "--print-config")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "ECOTUNE_TRAINING_STEPS: unknown key training.steps (did you mean training.max_steps?)")
}

func TestLoadDotEnv(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, ".env")
	require.NoError(t, os.WriteFile(p, []byte("# secrets\nHF_TOKEN=\"hf_abc def\"\nexport ECOTUNE_TEST_A=1 # one\nECOTUNE_TEST_B='x'\nECOTUNE_TEST_SET=file\n"), 0o600))
	t.Setenv("ECOTUNE_TEST_SET", "env")
	t.Setenv("HF_TOKEN", "")
	os.Unsetenv("HF_TOKEN")
	for _, k := range []string{"ECOTUNE_TEST_A", "ECOTUNE_TEST_B"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	require.NoError(t, loadDotEnv(p))
	assert.Equal(t, "hf_abc def", os.Getenv("HF_TOKEN"))
	assert.Equal(t, "1", os.Getenv("ECOTUNE_TEST_A"))
	assert.Equal(t, "x", os.Getenv("ECOTUNE_TEST_B"))
	assert.Equal(t, "env", os.Getenv("ECOTUNE_TEST_SET"), "the environment wins over .env")
	require.NoError(t, loadDotEnv(filepath.Join(dir, "missing")))
	require.NoError(t, os.WriteFile(p, []byte("ok=1\nnot a line\n"), 0o600))
	err := loadDotEnv(p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), ".env:2: want KEY=VALUE")
}
