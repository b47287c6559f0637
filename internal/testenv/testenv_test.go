package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRoot(t *testing.T) {
	root := Root(t)
	assert.True(t, isModuleRoot(root), "%s holds the module's go.mod", root)
	assert.Equal(t, filepath.Join(root, "internal", "testenv"), must(os.Getwd()))
}

func TestRequire(t *testing.T) {
	got := Require(t, "testenv.go", "this file")
	assert.Equal(t, filepath.Join(Root(t), "internal", "testenv", "testenv.go"), got)

	if os.Getenv(RequireEnv) != "1" {
		ran := t.Run("missing", func(t *testing.T) {
			Require(t, filepath.Join(Root(t), "build", "no-such-tool"), "no such tool")
			t.Error("Require returned for a missing asset")
		})
		assert.True(t, ran, "a missing asset skips the subtest")
	}
}

func TestHowToGet(t *testing.T) {
	root := Root(t)
	assert.Contains(t, howToGet(filepath.Join(root, "build", "cpu", "bin", "x")), "make native")
	assert.Contains(t, howToGet(filepath.Join(root, "third_party", "llama.cpp", "models", "x")), "make native")
	assert.Contains(t, howToGet(filepath.Join(filepath.Dir(root), "shared", "models", "x")), "shared folder")
	assert.Empty(t, howToGet(filepath.Join(root, "buildx")))
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

func TestSharedDir(t *testing.T) {
	t.Setenv(SharedEnv, "")
	assert.Equal(t, filepath.Join(filepath.Dir(Root(t)), "shared"), SharedDir())

	dir := t.TempDir()
	t.Setenv(SharedEnv, dir)
	assert.Equal(t, dir, SharedDir())
	assert.Contains(t, howToGet(filepath.Join(dir, "models", "x")), SharedEnv)
	ran := t.Run("missing", func(t *testing.T) {
		t.Setenv(RequireEnv, "")
		Shared(t, "no-such-file")
		t.Error("Shared returned for a missing asset")
	})
	assert.True(t, ran, "a missing shared asset skips the subtest")
}
