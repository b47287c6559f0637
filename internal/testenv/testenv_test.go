package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

	ran := t.Run("missing", func(t *testing.T) {
		t.Setenv(RequireEnv, "")
		t.Setenv("CI", "")
		Require(t, filepath.Join(Root(t), "build", "no-such-tool"), "no such tool")
		t.Error("Require returned for a missing asset")
	})
	assert.True(t, ran, "a missing asset skips the subtest")
}

// outcome is a testing.TB that records how Require ended instead of ending the test.
type outcome struct {
	testing.TB
	skipped, failed string
}

type ended struct{}

func (o *outcome) Helper()                      {}
func (o *outcome) Skip(args ...any)             { o.skipped = fmt.Sprint(args...); panic(ended{}) }
func (o *outcome) Fatal(args ...any)            { o.failed = fmt.Sprint(args...); panic(ended{}) }
func (o *outcome) Fatalf(f string, args ...any) { o.Fatal(fmt.Sprintf(f, args...)) }

// requireMissing runs Require on a missing file of testdata/ and returns how it ended.
func requireMissing(t *testing.T) *outcome {
	o := &outcome{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(ended); !ok {
					panic(r)
				}
			}
		}()
		Testdata(o, "no-such-file")
		t.Error("Testdata returned for a missing asset")
	}()
	return o
}

func TestStrict(t *testing.T) {
	for _, c := range []struct {
		require, ci string
		strict      bool
		why         string
	}{
		{"", "", false, ""},
		{"1", "", true, RequireEnv + "=1"},
		{"1", "true", true, RequireEnv + "=1"},
		{"", "true", true, "CI=true"},
		{"", "1", true, "CI=1"},
		{"", "false", false, ""},
		{"0", "true", false, ""},
	} {
		t.Run(c.require+"/"+c.ci, func(t *testing.T) {
			t.Setenv(RequireEnv, c.require)
			t.Setenv("CI", c.ci)
			strict, why := Strict()
			assert.Equal(t, c.strict, strict)
			assert.Equal(t, c.why, why)

			o := requireMissing(t)
			if c.strict {
				assert.Empty(t, o.skipped)
				assert.True(t, strings.HasPrefix(o.failed, c.why+" but the test asset testdata/no-such-file is missing"), o.failed)
			} else {
				assert.Empty(t, o.failed)
				assert.Contains(t, o.skipped, "the test asset testdata/no-such-file is missing")
				assert.Contains(t, o.skipped, "testdata/README.md")
				assert.NotContains(t, o.skipped, "\n", "one line")
			}
		})
	}
}

func TestHowToGet(t *testing.T) {
	root := Root(t)
	assert.Contains(t, howToGet(filepath.Join(root, "build", "cpu", "bin", "x")), "make native")
	assert.Contains(t, howToGet(filepath.Join(root, "third_party", "llama.cpp", "models", "x")), "make native")
	assert.Contains(t, howToGet(filepath.Join(root, "testdata", "x")), "testdata/README.md")
	assert.Empty(t, howToGet(filepath.Join(filepath.Dir(root), "shared", "models", "x")))
	assert.Empty(t, howToGet(filepath.Join(root, "buildx")))
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

func TestTestdata(t *testing.T) {
	root := Root(t)
	assert.Equal(t, filepath.Join(root, "testdata"), TestdataDir())
	assert.Equal(t, filepath.Join(root, "testdata", "stories260K.gguf"), StoriesPath())
	assert.Equal(t, StoriesPath(), Stories(t))
	assert.Equal(t, filepath.Join(root, "testdata", "rouge", "target.txt"), Testdata(t, filepath.Join("rouge", "target.txt")))
}
