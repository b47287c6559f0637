package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/internal/testenv"
)

// TestPullFolder: "pull OWNER/REPO" lists the repository through the hub's
// API, fetches only the checkpoint files, and the folder converts.
func TestPullFolder(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.gguf")
	require.NoError(t, factory.Init(factory.Spec{Arch: "qwen2", Embd: 64, Layers: 1, Heads: 4, HeadsKV: 2, FF: 96,
		VocabFile: testenv.Vocab(t, "llama-spm"), Seed: 1}, base))
	src := filepath.Join(dir, "src")
	code, _, stderr := runCLI(t, "export", "hf", "--model", base, "-o", src, "--shard-size", "2000000", "-q")
	require.Equal(t, 0, code, stderr)
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	siblings := []map[string]string{{"rfilename": "README.md"}, {"rfilename": "original/consolidated.00.pth"}}
	for _, e := range entries {
		siblings = append(siblings, map[string]string{"rfilename": e.Name()})
	}
	var mu sync.Mutex
	var served []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/models/o/r/revision/main" {
			_ = json.NewEncoder(w).Encode(map[string]any{"siblings": siblings})
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, "/o/r/resolve/main/")
		if !ok || strings.Contains(name, "/") {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		served = append(served, name)
		mu.Unlock()
		http.ServeFile(w, r, filepath.Join(src, name))
	}))
	defer srv.Close()

	out := filepath.Join(dir, "models")
	code, stdout, stderr := runCLI(t, "pull", "o/r", "-o", out, "--endpoint", srv.URL, "-q")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "wrote "+filepath.Join(out, "r")+" (")
	mu.Lock()
	defer mu.Unlock()
	assert.NotContains(t, served, "README.md")
	assert.Len(t, served, len(entries), "every checkpoint file, nothing else")
	for _, e := range entries {
		assert.FileExists(t, filepath.Join(out, "r", e.Name()))
	}
	code, stdout, stderr = runCLI(t, "convert", filepath.Join(out, "r"), "-o", filepath.Join(dir, "m.gguf"), "-q")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "Qwen2ForCausalLM → qwen2")

	siblings = []map[string]string{{"rfilename": "model-q4_k.gguf"}}
	code, _, stderr = runCLI(t, "pull", "o/r", "-o", out, "--endpoint", srv.URL, "-q")
	assert.Equal(t, exitError, code)
	assert.Contains(t, stderr, "not a checkpoint folder")
}
