package main

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPull(t *testing.T) {
	content := []byte(strings.Repeat("GGUF model bytes ", 5000))
	sum := sha256.Sum256(content)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/o/r/resolve/main/m.gguf" {
			http.NotFound(w, r)
			return
		}
		if calls.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		assert.Equal(t, "Bearer hf_test_token", r.Header.Get("Authorization"))
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		_, _ = w.Write(content)
	}))
	defer srv.Close()
	t.Setenv("HF_TOKEN", "hf_test_token")
	dir := t.TempDir()
	code, out, stderr := runCLI(t, "pull", "o/r:m.gguf", "-o", dir, "--endpoint", srv.URL, "-q")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "wrote "+filepath.Join(dir, "m.gguf"))
	assert.Contains(t, stderr, "503")
	assert.NotContains(t, stderr+out, "hf_test_token")
	got, err := os.ReadFile(filepath.Join(dir, "m.gguf"))
	require.NoError(t, err)
	assert.Equal(t, content, got)

	code, _, stderr = runCLI(t, "pull", "o/r:m.gguf", "-o", t.TempDir(), "--endpoint", srv.URL, "--sha256", strings.Repeat("0", 64), "--retries", "1", "-q")
	assert.Equal(t, exitError, code)
	assert.Contains(t, stderr, "sha256 is "+hex.EncodeToString(sum[:]))

	code, _, stderr = runCLI(t, "pull", "not-a-ref")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "owner/repo:file.gguf")
}
