package main

import (
	"errors"
	"os"
	"path/filepath"
)

// writeFileAtomic replaces path with data through a synced temporary file and a rename:
// a run killed while writing train_config.json must leave the old one (which --resume
// reads) or the new one, never half of either.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err = errors.Join(err, f.Chmod(0o644), f.Sync(), f.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
