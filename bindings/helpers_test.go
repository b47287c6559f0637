//go:build cgo

package bindings

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/testenv"
)

// storiesPath is the stories260K model committed as testdata/stories260K.gguf;
// requireStories checks that it is there.
var storiesPath = testenv.StoriesPath()

// testLogger is the logger TestMain installs; tests that swap it restore it.
var testLogger *slog.Logger

// TestMain keeps llama.cpp's load chatter out of the test output unless -v asks for it.
func TestMain(m *testing.M) {
	testLogger = testenv.LibLogger(slog.LevelWarn)
	SetLogger(testLogger)
	os.Exit(m.Run())
}

// requireStories skips the test when testdata/stories260K.gguf is absent, or fails it as
// testenv.Require does.
func requireStories(t testing.TB) {
	t.Helper()
	testenv.Stories(t)
}

// loadF16 writes and loads a small F16 llama with heads of 48 and a 32,000-token
// vocabulary (its single-token products take tinyBLAS's one-column path, its attention the
// F16 rows' vector tails), closed when the test ends.
func loadF16(t testing.TB) *Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f16.gguf")
	require.NoError(t, factory.Init(factory.Spec{Arch: "llama", Embd: 96, Layers: 2, Heads: 2, HeadsKV: 2, FF: 256,
		Type: gguf.TypeF16, Std: 0.1, VocabFile: testenv.Vocab(t, "llama-spm"), Seed: 9}, path))
	m, err := LoadModel(path, ModelOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// loadStories loads stories260K, closed when the test ends.
func loadStories(t testing.TB) *Model {
	t.Helper()
	requireStories(t)
	m, err := LoadModel(storiesPath, ModelOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// newContext creates a context closed when the test ends. One thread by default: ggml's
// worker threads spin-wait, and on a busy 2-core machine two of them make a 40-token
// generation take seconds instead of milliseconds.
func newContext(t testing.TB, m *Model, opts ContextOptions) *Context {
	t.Helper()
	if opts.Threads == 0 {
		opts.Threads = 1
	}
	c, err := NewContext(m, opts)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// seqTokens is one sequence's share of a batch.
type seqTokens struct {
	seq    int32
	tokens []int32
	pos0   int32
}

// decodeSeqs decodes several sequences in one batch and returns, per sequence, the logits
// of its last token.
func decodeSeqs(t testing.TB, c *Context, seqs ...seqTokens) [][]float32 {
	t.Helper()
	n := 0
	for _, s := range seqs {
		n += len(s.tokens)
	}
	b, err := NewBatch(n, 1)
	require.NoError(t, err)
	defer b.Close()
	var last []int
	for _, s := range seqs {
		for i, tok := range s.tokens {
			require.NoError(t, b.Add(tok, s.pos0+int32(i), []int32{s.seq}, i == len(s.tokens)-1))
		}
		last = append(last, b.Len()-1)
	}
	require.NoError(t, c.Decode(b))
	out := make([][]float32, len(seqs))
	for i, idx := range last {
		out[i], err = c.Logits(idx)
		require.NoError(t, err)
	}
	return out
}

// maxAbsDiff returns the largest element-wise difference of two equal-length slices.
func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// ggufKV is one metadata entry for writeGGUF.
type ggufKV struct {
	key string
	val any // string, uint32, float32 or []uint32
}

// ggufF32 is one F32 tensor for writeGGUF; ne is ggml order (ne[0] varies fastest).
type ggufF32 struct {
	name string
	ne   []int64
	data []float32

	// For tests of the header checks only: a ggml type id written instead of F32 (0), and
	// a shift added to the recorded data offset.
	typ         uint32
	offsetShift uint64
}

// writeGGUF writes a minimal GGUF v3 file (the gguf package's writer is another
// engineer's work in progress; this keeps the tests self-contained). Tensors are sorted
// by name so the output is deterministic.
func writeGGUF(t testing.TB, path string, kvs []ggufKV, tensors []ggufF32) {
	t.Helper()
	var buf bytes.Buffer
	le := func(v any) { require.NoError(t, binary.Write(&buf, binary.LittleEndian, v)) }
	str := func(s string) { le(uint64(len(s))); buf.WriteString(s) }

	tensors = slices.Clone(tensors)
	slices.SortFunc(tensors, func(a, b ggufF32) int { return cmp.Compare(a.name, b.name) })
	buf.WriteString("GGUF")
	le(uint32(3))
	le(uint64(len(tensors)))
	le(uint64(len(kvs)))
	for _, kv := range kvs {
		str(kv.key)
		switch v := kv.val.(type) {
		case string:
			le(ggufTypeString)
			str(v)
		case uint32:
			le(ggufTypeUint32)
			le(v)
		case float32:
			le(ggufTypeFloat32)
			le(v)
		case []uint32:
			le(ggufTypeArray)
			le(ggufTypeUint32)
			le(uint64(len(v)))
			le(v)
		default:
			t.Fatalf("writeGGUF: unsupported value %T", v)
		}
	}
	const align = ggufDefaultAlignment
	var off uint64
	for _, tn := range tensors {
		str(tn.name)
		le(uint32(len(tn.ne)))
		n := int64(1)
		for _, d := range tn.ne {
			le(uint64(d))
			n *= d
		}
		require.EqualValues(t, n, len(tn.data), "tensor %s", tn.name)
		le(tn.typ) // 0 = GGML_TYPE_F32
		le(off + tn.offsetShift)
		off = alignUp(off+uint64(4*n), align)
	}
	for buf.Len()%align != 0 {
		buf.WriteByte(0)
	}
	for _, tn := range tensors {
		le(tn.data)
		for buf.Len()%align != 0 {
			buf.WriteByte(0)
		}
	}
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
}
