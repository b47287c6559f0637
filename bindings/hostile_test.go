//go:build cgo

package bindings

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ecotune/ecotune/internal/hostile"
	"github.com/stretchr/testify/require"
)

// hostileChild is the variable that makes the test binary, re-run by
// TestHostileModelsNeverCrash, load one model and decode with it instead of testing.
const hostileChild = "ECOTUNE_BINDINGS_HOSTILE_MODEL"

func init() {
	path := os.Getenv(hostileChild)
	if path == "" {
		return
	}
	SetLogger(nil)
	if err := loadAndDecode(path); err != nil {
		fmt.Println("error:", err)
	} else {
		fmt.Println("ok")
	}
	os.Exit(0)
}

// loadAndDecode is what an embedding program does first with a model file.
func loadAndDecode(path string) error {
	m, err := LoadModel(path, ModelOptions{})
	if err != nil {
		return err
	}
	defer m.Close()
	c, err := NewContext(m, ContextOptions{NCtx: 64, Threads: 1})
	if err != nil {
		return err
	}
	defer c.Close()
	toks, err := m.Tokenize("Once upon a time", true, false)
	if err != nil {
		return err
	}
	b, err := NewBatch(len(toks), 1)
	if err != nil {
		return err
	}
	defer b.Close()
	for i, t := range toks {
		if err := b.Add(t, int32(i), []int32{0}, i == len(toks)-1); err != nil {
			return err
		}
	}
	return c.Decode(b)
}

// TestHostileModelsNeverCrash loads every hostile variant of the test model through the
// bindings alone, as a Go program embedding ecotune would (the commands check models
// first; an embedder calls LoadModel directly), each in a process of its own: a model
// may be refused with an error or run, but the process must never die in libllama.
func TestHostileModelsNeverCrash(t *testing.T) {
	requireStories(t)
	base, err := os.ReadFile(storiesPath)
	require.NoError(t, err)
	models, err := hostile.Models(base)
	require.NoError(t, err)
	dir := t.TempDir()
	exe, err := os.Executable()
	require.NoError(t, err)
	var crashed []string
	for _, e := range models {
		if e.Large {
			continue
		}
		path, err := e.Write(dir)
		require.NoError(t, err)
		cmd := exec.Command(exe, "-test.run", "^$")
		cmd.Env = append(os.Environ(), hostileChild+"="+path)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) || !strings.Contains(string(out), "ok") && !strings.Contains(string(out), "error:") {
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			crashed = append(crashed, fmt.Sprintf("%s: %v: %s", e.Name, err, lines[len(lines)-1]))
			continue
		}
		require.NoError(t, err, e.Name)
	}
	require.Empty(t, crashed, "%d of %d models crashed the process", len(crashed), len(models))
}
