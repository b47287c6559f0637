package data

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"os"
	"path/filepath"

	"github.com/ecotune/ecotune/internal/atomicfile"
)

// atomicFile writes an output through a temporary file in the same
// directory, renamed into place only on commit, so a crash or an error
// never leaves a half-written file under the final name. It also hashes
// and counts what is written, for the manifest.
type atomicFile struct {
	name  string // final base name
	path  string // final path
	f     *os.File
	w     *bufio.Writer
	h     hash.Hash
	n     int64
	lines int
}

func createAtomic(dir, name string) (*atomicFile, error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return nil, err
	}
	return &atomicFile{name: name, path: filepath.Join(dir, name), f: f, w: bufio.NewWriterSize(f, 1<<20), h: sha256.New()}, nil
}

// writeLine writes one newline-terminated line.
func (a *atomicFile) writeLine(b []byte) error {
	a.h.Write(b)
	a.n += int64(len(b))
	a.lines++
	_, err := a.w.Write(b)
	return err
}

// commit flushes, syncs and renames the file into place.
func (a *atomicFile) commit() (OutputInfo, error) {
	info := OutputInfo{File: a.name, Lines: a.lines, Bytes: a.n, SHA256: hex.EncodeToString(a.h.Sum(nil))}
	err := a.w.Flush()
	if err == nil {
		err = a.f.Chmod(0o644) // CreateTemp makes 0600 files; outputs are ordinary data
	}
	if err == nil {
		err = a.f.Sync()
	}
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(a.f.Name(), a.path)
	}
	if err != nil {
		_ = os.Remove(a.f.Name())
	}
	return info, err
}

// abort discards the temporary file.
func (a *atomicFile) abort() {
	_ = a.f.Close()
	_ = os.Remove(a.f.Name())
}

// writeFileAtomic writes data to path through a temporary file and rename.
func writeFileAtomic(path string, data []byte) error { return atomicfile.WriteFile(path, data, 0o644) }
