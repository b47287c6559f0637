//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package gguf

import (
	"fmt"
	"math"
	"os"
	"syscall"
)

// mapFile maps size bytes of fh read-only and shared, so the page cache backs the
// tensors and several processes reading one model share its memory.
func mapFile(fh *os.File, size int64) ([]byte, func() error, error) {
	if size == 0 {
		// mmap rejects empty mappings; an empty file fails to parse anyway.
		return nil, func() error { return nil }, nil
	}
	if size > math.MaxInt {
		return nil, nil, fmt.Errorf("file of %d bytes is too large to map", size)
	}
	data, err := syscall.Mmap(int(fh.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}

// dropPages tells the kernel this process no longer needs the mapped pages that b
// (a part of a file mapping) touches: they leave its resident set, and a later read
// maps them again from the page cache or the file.
func dropPages(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	return syscall.Madvise(b, syscall.MADV_DONTNEED)
}
