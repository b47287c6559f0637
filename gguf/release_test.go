package gguf

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rssFile is the process's resident file-backed memory in bytes (Linux's RssFile).
func rssFile(t *testing.T) int64 {
	f, err := os.Open("/proc/self/status")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestRelease checks that a released tensor's pages leave the resident set of a mapped
// file and that its bytes still read the same; on bytes given to ParseBytes it must do
// nothing (dropping pages of ordinary memory would zero them).
func TestRelease(t *testing.T) {
	const n = 8 << 20
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	b := &Builder{Meta: allValues(t), Tensors: []Tensor{
		{TensorInfo: TensorInfo{Name: "big", Dims: []int64{n / 4}, Type: TypeF32}, Data: DataBytes(data)},
		{TensorInfo: TensorInfo{Name: "small", Dims: []int64{3}, Type: TypeF32}, Data: DataBytes([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})},
	}}
	var buf bytes.Buffer
	_, err := b.WriteTo(&buf)
	require.NoError(t, err)
	path := writeTemp(t, "big.gguf", buf.Bytes())

	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	got, err := f.Data("big")
	require.NoError(t, err)
	require.Equal(t, data, got) // reads every page
	before := int64(0)
	if runtime.GOOS == "linux" {
		before = rssFile(t)
	}
	require.NoError(t, f.Release("big", 0, n/2))
	require.NoError(t, f.Release("big", n/2, n/2))
	if runtime.GOOS == "linux" {
		after := rssFile(t)
		t.Logf("resident file pages: %d KiB before Release, %d KiB after", before>>10, after>>10)
		assert.Less(t, after, before-n*3/4, "the tensor's pages left the resident set")
	}
	got, err = f.Data("big")
	require.NoError(t, err)
	assert.Equal(t, data, got, "a released tensor reads the same")
	small, err := f.Data("small")
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, small, "a neighbour sharing a page reads the same")
	assert.ErrorIs(t, f.Release("missing", 0, 1), ErrNoTensor)
	assert.Error(t, f.Release("big", n/2, n/2+1), "past the tensor's end")

	p, err := ParseBytes(buf.Bytes())
	require.NoError(t, err)
	require.NoError(t, p.Release("big", 0, n))
	got, err = p.Data("big")
	require.NoError(t, err)
	assert.Equal(t, data, got, "Release leaves the caller's bytes alone")

	require.NoError(t, f.Close())
	assert.ErrorIs(t, f.Release("big", 0, n), ErrClosed)
}
