package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/quant"
)

// quantizeInput writes a small F32 llama model whose widths every type divides.
func quantizeInput(t *testing.T) string {
	t.Helper()
	in := filepath.Join(t.TempDir(), "in.gguf")
	require.NoError(t, factory.Init(factory.Spec{Arch: "llama", Embd: 256, Layers: 2, Heads: 4, HeadsKV: 1, FF: 512, VocabSize: 300, Seed: 4}, in))
	return in
}

// dataStats returns a file's parameter count, tensor data bytes and tensor
// count per type, read with our GGUF reader.
func dataStats(t *testing.T, path string) (params, bytes int64, types map[gguf.Type]int) {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	types = map[gguf.Type]int{}
	for _, ti := range f.Tensors {
		n, _ := ti.Elements()
		s, err := ti.Size()
		require.NoError(t, err)
		params += n
		bytes += s
		types[ti.Type]++
	}
	return params, bytes, types
}

func TestQuantizeHelp(t *testing.T) {
	code, out, stderr := runCLI(t, "quantize", "--help")
	require.Equal(t, 0, code, stderr)
	for _, want := range append([]string{"IN.gguf OUT.gguf", "--type", "--pure", "--dry-run", "Example:", "IQ4_NL"}, quant.UserTypes...) {
		assert.Contains(t, out, want)
	}
}

func TestQuantizeUsageErrors(t *testing.T) {
	in := quantizeInput(t)
	out := filepath.Join(t.TempDir(), "out.gguf")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"quantize"}, "want IN.gguf OUT.gguf, got 0 arguments"},
		{[]string{"quantize", in}, "want IN.gguf OUT.gguf, got 1 arguments"},
		{[]string{"quantize", in, out, "extra"}, "got 3 arguments"},
		{[]string{"quantize", in, out, "--type", "q3_x"}, `unknown type "q3_x"; known: `},
		{[]string{"quantize", "--no-such-flag", in, out}, "no-such-flag"},
		{[]string{"quantize", in, out, "--no-such-flag"}, "no-such-flag"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		assert.Equal(t, exitUsage, code, "%v: %s", c.args, stderr)
		assert.Contains(t, stderr, c.want, c.args)
	}
	_, err := os.Stat(out)
	assert.True(t, os.IsNotExist(err), "no usage error writes a file")

	code, _, stderr := runCLI(t, "quantize", filepath.Join(t.TempDir(), "none.gguf"), out)
	assert.Equal(t, exitError, code, stderr)
	assert.Contains(t, stderr, "none.gguf")
	assert.Contains(t, stderr, "hint: check the path")
}

var summaryLine = regexp.MustCompile(`tensor data: ([0-9.]+) MiB -> ([0-9.]+) MiB \(([0-9.]+) -> ([0-9.]+) bits per weight\)`)

// TestQuantizeRun quantizes with flags after the paths (as the issue writes
// the command) and checks every figure of the summary against the files.
func TestQuantizeRun(t *testing.T) {
	in := quantizeInput(t)
	for _, c := range []struct {
		typ, fileType string
		mainType      gguf.Type
	}{
		{"q8_0", "Q8_0", gguf.TypeQ8_0},
		{"nf4", "IQ4_NL", gguf.TypeIQ4_NL},
		{"q4_k", "Q4_K_M", gguf.TypeQ4_K},
	} {
		t.Run(c.typ, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), c.typ+".gguf")
			code, stdout, stderr := runCLI(t, "quantize", in, out, "--type", c.typ)
			require.Equal(t, 0, code, stderr)
			assert.Contains(t, stderr, "quantizing to "+c.fileType, "progress bar on stderr")

			params, inBytes, _ := dataStats(t, in)
			outParams, outBytes, types := dataStats(t, out)
			require.Equal(t, params, outParams)
			assert.Equal(t, 2*2+1, types[gguf.TypeF32], "the 5 norms stay F32")
			assert.Greater(t, types[c.mainType], 0, "most weights are %s: %v", c.mainType, types)

			var parts []string
			for _, ty := range slices.Sorted(maps.Keys(types)) {
				parts = append(parts, fmt.Sprintf("%s %d", ty, types[ty]))
			}
			assert.Contains(t, stdout, fmt.Sprintf("wrote %s (%s)\n", out, c.fileType))
			assert.Contains(t, stdout, fmt.Sprintf("tensors: %d (%s)\n", 1+9*2+2, strings.Join(parts, ", ")))

			m := summaryLine.FindStringSubmatch(stdout)
			require.NotNil(t, m, "no size summary in:\n%s", stdout)
			assert.Equal(t, fmt.Sprintf("%.2f", float64(inBytes)/(1<<20)), m[1])
			assert.Equal(t, fmt.Sprintf("%.2f", float64(outBytes)/(1<<20)), m[2])
			assert.Equal(t, "32.00", m[3])
			assert.Equal(t, fmt.Sprintf("%.2f", 8*float64(outBytes)/float64(params)), m[4])

			inSt, err := os.Stat(in)
			require.NoError(t, err)
			outSt, err := os.Stat(out)
			require.NoError(t, err)
			assert.Contains(t, stdout, fmt.Sprintf("file: %.2f MiB -> %.2f MiB (%.1f%% of the original)\n",
				float64(inSt.Size())/(1<<20), float64(outSt.Size())/(1<<20), 100*float64(outSt.Size())/float64(inSt.Size())))

			f, err := gguf.Open(out)
			require.NoError(t, err)
			defer f.Close()
			ft, err := f.Meta.Uint32("general.file_type")
			require.NoError(t, err)
			want, err := quant.ParseFileType(c.typ)
			require.NoError(t, err)
			assert.EqualValues(t, want, ft)
		})
	}
}

func TestQuantizeDryRunAndQuiet(t *testing.T) {
	in := quantizeInput(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "plan.gguf")
	code, stdout, stderr := runCLI(t, "quantize", "--dry-run", "--type", "q4_0", in, out)
	require.Equal(t, 0, code, stderr)
	_, err := os.Stat(out)
	assert.True(t, os.IsNotExist(err), "--dry-run writes nothing")
	assert.Regexp(t, `(?m)^blk\.0\.attn_q\.weight\s+\[256 256\]\s+f32 -> q4_0$`, stdout)
	assert.Regexp(t, `(?m)^output\.weight\s+\[256 300\]\s+f32 -> q6_K$`, stdout, "the output matrix keeps more bits")
	assert.Regexp(t, `(?m)^blk\.1\.ffn_norm\.weight\s+\[256\]\s+f32 -> f32$`, stdout)
	assert.Regexp(t, summaryLine, stdout)
	assert.NotContains(t, stdout, "file:", "no file sizes without a file")

	code, stdout, stderr = runCLI(t, "quantize", "-q", "-t", "f16", in, out)
	require.Equal(t, 0, code, stderr)
	assert.Empty(t, stderr, "--quiet: no progress bar")
	assert.Contains(t, stdout, "(32.00 -> 16.")
}
