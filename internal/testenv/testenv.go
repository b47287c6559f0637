// Package testenv locates the test assets that live outside the Go sources: llama.cpp's
// tools and vocabularies, which `make native` builds and fetches, and the real models and
// reference vectors committed under testdata/ at the repository root (testdata/README.md).
// A test that needs a missing asset is skipped, or fails when ECOTUNE_REQUIRE_TOOLS=1 (which
// `make test` sets) or CI=true, so that CI cannot pass by skipping.
package testenv

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// RequireEnv is the environment variable that, set to 1, turns a missing asset into a failure.
const RequireEnv = "ECOTUNE_REQUIRE_TOOLS"

// StoriesFile is the stories260K model's file name under testdata/.
const StoriesFile = "stories260K.gguf"

const modulePath = "github.com/ecotune/ecotune"

// findRoot looks for the module's go.mod above the working directory, then above this
// source file.
var findRoot = sync.OnceValues(func() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if isModuleRoot(dir) {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("no go.mod of module " + modulePath + " above the working directory")
})

// isModuleRoot reports whether dir holds this module's go.mod.
func isModuleRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) == 2 && fields[0] == "module" {
			return fields[1] == modulePath
		}
	}
	return false
}

// Root returns the repository root, failing the test when it cannot be found.
func Root(tb testing.TB) string {
	tb.Helper()
	root, err := findRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// Require returns path (absolute, or relative to the working directory) made absolute when
// it exists; otherwise it skips the test, or fails it when Strict.
func Require(tb testing.TB, path, what string) string {
	tb.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		tb.Fatal(err)
	}
	_, err = os.Stat(abs)
	if err == nil {
		return abs
	}
	msg := what + " is missing (" + err.Error() + ")"
	if hint := howToGet(abs); hint != "" {
		msg += ": " + hint
	}
	Missing(tb, msg)
	return ""
}

// Strict reports whether a missing asset fails a test instead of skipping it, and why:
// ECOTUNE_REQUIRE_TOOLS=1 (`make test` sets it), or CI=true when ECOTUNE_REQUIRE_TOOLS is
// unset, so that a CI job that runs `go test` itself cannot pass by skipping either.
// ECOTUNE_REQUIRE_TOOLS=0 lets a CI job skip on purpose.
func Strict() (bool, string) {
	switch os.Getenv(RequireEnv) {
	case "1":
		return true, RequireEnv + "=1"
	case "":
		if ci := os.Getenv("CI"); strings.EqualFold(ci, "true") || ci == "1" {
			return true, "CI=" + ci
		}
	}
	return false, ""
}

// Missing skips the test for a missing asset with one line, msg, or fails it when Strict.
func Missing(tb testing.TB, msg string) {
	tb.Helper()
	if strict, why := Strict(); strict {
		tb.Fatal(why + " but " + msg)
	}
	tb.Skip(msg + " (set " + RequireEnv + "=1 to make this a failure)")
}

// howToGet says where a missing asset at abs comes from, or "" when it does not know.
func howToGet(abs string) string {
	root, err := findRoot()
	if err != nil {
		return ""
	}
	under := func(dir string) bool {
		rel, err := filepath.Rel(dir, abs)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
	}
	switch {
	case under(filepath.Join(root, "build")):
		return "run `make native` to build llama.cpp's tools"
	case under(filepath.Join(root, "third_party")):
		return "run `make native` to fetch llama.cpp's sources and vocabularies"
	case under(filepath.Join(root, "testdata")):
		return "`git checkout -- testdata` restores it (testdata/README.md lists what belongs there)"
	}
	return ""
}

// Tool returns llama.cpp's tool build/VARIANT/bin/NAME (VARIANT cuda in a CUDA build, else
// cpu), or skips (fails) as Require does.
func Tool(tb testing.TB, name string) string {
	tb.Helper()
	return Require(tb, filepath.Join(Root(tb), "build", buildVariant, "bin", name), "llama.cpp's "+name)
}

// Vocab returns llama.cpp's third_party/llama.cpp/models/ggml-vocab-NAME.gguf, or skips (fails) as Require does.
func Vocab(tb testing.TB, name string) string {
	tb.Helper()
	return Require(tb, filepath.Join(Root(tb), "third_party", "llama.cpp", "models", "ggml-vocab-"+name+".gguf"), "llama.cpp's "+name+" vocabulary")
}

// TestdataDir returns the repository's testdata/ folder, which holds the real models and
// reference vectors tests share (testdata/README.md says where each comes from); "testdata"
// when no repository root is found, which then holds none of them and skips what needs them.
func TestdataDir() string {
	root, err := findRoot()
	if err != nil {
		return "testdata"
	}
	return filepath.Join(root, "testdata")
}

// Testdata returns REL under testdata/ (TestdataDir), or skips (fails) as Require does.
func Testdata(tb testing.TB, rel string) string {
	tb.Helper()
	return Require(tb, filepath.Join(TestdataDir(), rel), "the test asset testdata/"+filepath.ToSlash(rel))
}

// StoriesPath returns the path of the stories260K model under testdata/, without checking
// that it is there (Stories does).
func StoriesPath() string {
	return filepath.Join(TestdataDir(), StoriesFile)
}

// Stories returns the stories260K model (testdata/stories260K.gguf), or skips (fails) as
// Require does.
func Stories(tb testing.TB) string {
	tb.Helper()
	return Testdata(tb, StoriesFile)
}

// Run runs a program and returns its combined output, failing the test on a non-zero exit.
func Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out)
	}
	return string(out)
}

var finalPPL = regexp.MustCompile(`Final estimate: PPL = ([0-9.]+)`)

// Perplexity runs llama-perplexity on model over text with a 128-token context and
// returns its final estimate. The tool's asynchronous logger is never flushed at exit
// (llama.cpp issue 22142), so a run can lose its last lines, the estimate among them;
// such runs are retried.
func Perplexity(tb testing.TB, model, text string) float64 {
	tb.Helper()
	tool := Tool(tb, "llama-perplexity")
	var out string
	for range 5 {
		out = Run(tb, tool, "-m", model, "-f", text, "-c", "128", "-t", "2", "--seed", "1")
		if m := finalPPL.FindStringSubmatch(out); m != nil {
			ppl, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				tb.Fatalf("llama-perplexity's estimate %q: %v", m[1], err)
			}
			return ppl
		}
		tb.Logf("llama-perplexity printed no final estimate (%d bytes of output); running it again", len(out))
	}
	tb.Fatalf("no final estimate in 5 runs of llama-perplexity; last output:\n%s", out)
	return 0
}

// StrictF32 makes cuBLAS multiply F32 matrices in F32 in this process, unless the
// environment already sets NVIDIA_TF32_OVERRIDE: ggml's CUDA backend asks cuBLAS for
// TF32 tensor-core math, whose 10-bit mantissas (2⁻¹¹ relative error per input) the
// tests' F32 bounds are not made for. Call it before anything uses CUDA (TestMain).
// ggml's own kernels for at most 16 columns (mmf) still round F32 inputs to TF32.
func StrictF32() {
	if _, ok := os.LookupEnv("NVIDIA_TF32_OVERRIDE"); !ok {
		os.Setenv("NVIDIA_TF32_OVERRIDE", "0")
	}
}
