package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/ecotune/ecotune/convert"
)

// convertedFormat changes when Convert's output for the same folder would
// change, so that older cache entries are not reused.
const convertedFormat = "convert-1"

// modelPath returns path itself for a GGUF file, and for a Hugging Face
// checkpoint folder (one with config.json) the GGUF converted from it into
// ~/.cache/ecotune/converted: converted once, then reused while the folder's
// files keep their names, sizes and modification times.
func modelPath(ctx context.Context, path string, errw io.Writer) (string, error) {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return path, nil // a file, or an error the loader reports with its own words
	}
	if _, err := os.Stat(filepath.Join(path, convert.ConfigFile)); err != nil {
		return "", fmt.Errorf("%s is a folder without %s: give a GGUF file or a Hugging Face checkpoint folder", path, convert.ConfigFile)
	}
	key, err := folderKey(path)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "ecotune", "converted")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, filepath.Base(filepath.Clean(path))+"-"+key+".gguf")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	fmt.Fprintf(errw, "converting the Hugging Face checkpoint %s into %s (once)\n", path, out)
	show := byteProgress(errw, "converting")
	if _, err := convert.Convert(ctx, convert.Options{Dir: path, Out: out,
		Progress: func(p convert.Progress) { show(p.BytesDone, p.BytesTotal, p.Done, p.Total) }}); err != nil {
		return "", err
	}
	return out, nil
}

// folderKey hashes what identifies a checkpoint folder's contents cheaply:
// its absolute path and each file's name, size and modification time.
func folderKey(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", convertedFormat, abs)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		info, err := os.Stat(filepath.Join(abs, n))
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", n, info.Size(), info.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
