package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// writeResults writes one JSON line per result to path, or to stdout when path is "".
// A file is written under a temporary name beside path and renamed into place, so a
// reader never sees half a file and a failed run leaves none.
func writeResults(path string, stdout io.Writer, results []result) error {
	if path == "" {
		return encode(stdout, results)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	err = encode(tmp, results)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("batch: writing %s: %w", path, err)
	}
	return nil
}

func encode(w io.Writer, results []result) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false) // prompts and outputs are text, not HTML
	for _, r := range results {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return bw.Flush()
}
