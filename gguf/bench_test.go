package gguf

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// peakRSSLimit bounds the peak resident set size of a process writing a 2 GiB
// model: what a machine that could not hold the model in memory can afford.
const peakRSSLimit = 300 << 20

// vmHWM returns the process's peak resident set size in bytes (VmHWM in
// /proc/self/status), or -1 where that file does not exist.
func vmHWM() int64 {
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

// BenchmarkWriteLarge writes a 2 GiB model (64 F32 tensors of 32 MiB, generated
// on the fly) and reports peak RSS: the writer must hold no more than a chunk
// of one tensor at a time, so RSS stays far below the file size. It fails when
// the peak passes peakRSSLimit, the bound the streaming writer promises.
// Measured 2026-11-30 (2 shared cores, go1.26): 9.96 MiB peak RSS, 135 MB/s.
func BenchmarkWriteLarge(b *testing.B) {
	if testing.Short() {
		b.Skip("writes 2 GiB to the temp dir: skipped with -short")
	}
	const (
		nTensors    = 64
		tensorBytes = 32 << 20
		chunkBytes  = 1 << 20
	)
	meta := &Metadata{}
	meta.Set("general.architecture", ValueOf("llama"))
	chunk := make([]byte, chunkBytes)
	tensors := make([]Tensor, nTensors)
	for i := range tensors {
		tensors[i] = Tensor{
			TensorInfo: TensorInfo{Name: fmt.Sprintf("blk.%d.ffn_up.weight", i), Dims: []int64{4096, tensorBytes / 4 / 4096}, Type: TypeF32},
			Data: func(w io.Writer) error {
				for off := 0; off < tensorBytes; off += chunkBytes {
					for j := range chunk {
						chunk[j] = byte(i + off + j)
					}
					if _, err := w.Write(chunk); err != nil {
						return err
					}
				}
				return nil
			},
		}
	}
	builder := &Builder{Meta: meta, Tensors: tensors}
	path := filepath.Join(b.TempDir(), "large.gguf")

	before := vmHWM()
	b.SetBytes(nTensors * tensorBytes)
	for b.Loop() {
		require.NoError(b, builder.WriteFile(path))
	}
	b.StopTimer()
	after := vmHWM()
	if after >= 0 {
		b.ReportMetric(float64(after)/(1<<20), "peak-RSS-MiB")
		b.ReportMetric(float64(after-before)/(1<<20), "RSS-growth-MiB")
		if after > peakRSSLimit {
			b.Errorf("peak RSS %d MiB while writing %d MiB: over the %d MiB bound", after>>20, nTensors*tensorBytes>>20, peakRSSLimit>>20)
		}
	}
	st, err := os.Stat(path)
	require.NoError(b, err)
	require.Greater(b, st.Size(), int64(nTensors*tensorBytes))
}

// BenchmarkOpen parses the largest vocab-only file (a 16 MB header of tokens).
func BenchmarkOpen(b *testing.B) {
	path := requireFile(b, filepath.Join(vocabDir, "ggml-vocab-gemma-4.gguf"))
	for b.Loop() {
		f, err := Open(path)
		require.NoError(b, err)
		require.NoError(b, f.Close())
	}
}
