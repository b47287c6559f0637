package examples_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/internal/testmodel"
)

// TestMain keeps llama.cpp's load chatter out of the test output unless -v asks for it.
func TestMain(m *testing.M) {
	bindings.SetLogger(testenv.LibLogger(slog.LevelError))
	os.Exit(m.Run())
}

// buildExamples builds the example programs into a temporary folder with the build tags
// this test binary has (a CUDA test run builds CUDA examples) and returns the folder.
func buildExamples(t *testing.T) string {
	t.Helper()
	gotool, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "the go command is not on PATH to build the examples")
	}
	bin := t.TempDir()
	args := []string{"build", "-o", bin + string(filepath.Separator)}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "-tags" && s.Value != "" {
				args = append(args, "-tags", s.Value)
			}
		}
	}
	args = append(args, "./chat", "./batch")
	start := time.Now()
	cmd := exec.CommandContext(t.Context(), gotool, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("built the examples in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// output is what a finished example program left behind.
type output struct {
	stdout, stderr string
	code           int
}

// runProgram runs bin with args and stdin, bounded in time so a hung example fails the
// test instead of stalling the suite.
func runProgram(t *testing.T, bin, stdin string, args ...string) output {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s ran %v", filepath.Base(bin), time.Since(start).Round(time.Millisecond))
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%s: %v", filepath.Base(bin), err)
	}
	return output{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// refModel generates the way `ecotune generate` does, independently of serve: a fresh
// context for every call, adapters applied to it directly.
type refModel struct {
	m        *bindings.Model
	adapters map[string]*bindings.Adapter
}

func newRefModel(t *testing.T, base string, adapters map[string]string) *refModel {
	t.Helper()
	m, err := bindings.LoadModel(base, bindings.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	r := &refModel{m: m, adapters: map[string]*bindings.Adapter{}}
	for name, path := range adapters {
		a, err := bindings.LoadAdapter(m, path)
		if err != nil {
			t.Fatal(err)
		}
		r.adapters[name] = a
	}
	return r
}

// generate returns the greedy continuation of prompt under adapter ("" for the base) and
// how many tokens it took.
func (r *refModel) generate(t *testing.T, adapter, prompt string, maxTokens int) (string, int) {
	t.Helper()
	c, err := bindings.NewContext(r.m, bindings.ContextOptions{NCtx: 512, Threads: 1, ThreadsBatch: 1, BatchInvariant: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if adapter != "" {
		if err := c.SetAdapters([]bindings.AdapterScale{{Adapter: r.adapters[adapter], Scale: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	var sb strings.Builder
	n := 0
	for tok, err := range bindings.Generate(t.Context(), c, prompt, bindings.GenerateOptions{MaxTokens: maxTokens}) {
		if err != nil {
			t.Fatal(err)
		}
		sb.WriteString(tok.Text)
		n++
	}
	return sb.String(), n
}

// chatPrompt formats a conversation with the template the fixture model carries, without
// going through the engine.
func chatPrompt(t *testing.T, msgs ...bindings.ChatMessage) string {
	t.Helper()
	p, err := bindings.ApplyChatTemplate(testmodel.ChatMLTemplate, msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
