// Package atomicfile writes files so that a crash or a kill at any moment leaves either
// the old file or the complete new one under the final name, never part of either.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data: a temporary file in the same directory, synced,
// then renamed over path, then the directory synced so the rename itself survives a
// power loss.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err = errors.Join(err, f.Chmod(perm), f.Sync(), f.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	SyncDir(filepath.Dir(path))
	return nil
}

// SyncDir makes renames in dir durable; best effort, as some file systems refuse to sync
// a directory.
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
