package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// npmInstalls remembers each package set's installation within one test process.
var npmInstalls sync.Map // key string → func() (string, error)

// NodePackages returns node and a directory whose node_modules holds the given npm
// packages ("name@version"), installed once into ~/.cache/ecotune/npm, or skips (fails
// under RequireEnv or CI) when node, npm or the registry is unavailable. The versions are
// pinned so that what a test checks does not move under it.
func NodePackages(tb testing.TB, pkgs ...string) (node, dir string) {
	tb.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		Missing(tb, "node (Debian package nodejs) is missing")
		return "", ""
	}
	key := strings.Join(pkgs, "+")
	once, _ := npmInstalls.LoadOrStore(key, sync.OnceValues(func() (string, error) { return installNPM(key, pkgs) }))
	dir, err = once.(func() (string, error))()
	if err != nil {
		Missing(tb, fmt.Sprintf("npm packages %s are unavailable: %v", key, err))
		return "", ""
	}
	return node, dir
}

// installNPM installs pkgs beside their final place and renames the result in, so that
// concurrent test processes never see half an installation.
func installNPM(key string, pkgs []string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "ecotune", "npm", strings.NewReplacer("/", "_", "@", "-").Replace(key))
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err == nil {
		return dir, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm is not installed (Debian package npm), so %s cannot be installed into %s", key, dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".install-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	args := append([]string{"install", "--prefix", tmp, "--ignore-scripts", "--no-audit", "--no-fund"}, pkgs...)
	if out, err := exec.Command(npm, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "node_modules")); statErr != nil { // another process won the race otherwise
			return "", err
		}
	}
	return dir, nil
}
