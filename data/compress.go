package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Compression names how an input file is compressed on disk.
type Compression string

// Supported compressions; a file is also sniffed by its magic bytes, so a
// compressed file without the suffix still reads.
const (
	CompressionNone Compression = ""
	CompressionGzip Compression = "gzip"
	CompressionZstd Compression = "zstd"
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	utf8BOM   = []byte{0xef, 0xbb, 0xbf}
)

// splitCompression strips a compression suffix from a file name.
func splitCompression(name string) (string, Compression) {
	lower := strings.ToLower(name)
	for _, s := range []struct {
		suffix string
		c      Compression
	}{{".gz", CompressionGzip}, {".gzip", CompressionGzip}, {".zst", CompressionZstd}, {".zstd", CompressionZstd}} {
		if strings.HasSuffix(lower, s.suffix) {
			return name[:len(name)-len(s.suffix)], s.c
		}
	}
	return name, CompressionNone
}

// decompressed is a reader over the decompressed bytes of one input, with
// its UTF-8 byte-order mark removed (Excel writes one before CSV headers).
type decompressed struct {
	*bufio.Reader
	closer func()
}

func (d *decompressed) Close() {
	if d.closer != nil {
		d.closer()
	}
}

// readBufferSize is large so JSONL lines of a few hundred KiB are read
// without the slow accumulate path, yet small next to the memory budget.
const readBufferSize = 1 << 20

// decompress wraps r according to its magic bytes and strips a leading BOM.
func decompress(r io.Reader) (*decompressed, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(4)
	d := &decompressed{}
	var src io.Reader = br
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		src = zr
	case bytes.HasPrefix(head, zstdMagic):
		// One decoder goroutine: inputs are read one at a time and the CPU
		// is better spent on the workers that parse records.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		src = zr
		d.closer = zr.Close
	}
	d.Reader = bufio.NewReaderSize(src, readBufferSize)
	if bom, _ := d.Peek(3); bytes.Equal(bom, utf8BOM) {
		_, _ = d.Discard(3)
	}
	return d, nil
}
