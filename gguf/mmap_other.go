//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package gguf

import (
	"fmt"
	"io"
	"os"
)

// mapFile reads the whole file into memory where syscall.Mmap is unavailable:
// slower and heavier than a mapping, but File offers the same views.
func mapFile(fh *os.File, size int64) ([]byte, func() error, error) {
	data := make([]byte, size)
	if _, err := io.ReadFull(fh, data); err != nil {
		return nil, nil, fmt.Errorf("read: %w", err)
	}
	return data, func() error { return nil }, nil
}

// dropPages does nothing where the file was read rather than mapped.
func dropPages([]byte) error { return nil }
