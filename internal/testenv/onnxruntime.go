package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// ONNXRuntimeVersion is the onnxruntime-node package ONNXRuntime installs.
const ONNXRuntimeVersion = "1.30.0"

// installORT installs onnxruntime-node once per process.
var installORT = sync.OnceValues(func() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "ecotune", "npm", "onnxruntime-node-"+ONNXRuntimeVersion)
	pkg := filepath.Join(dir, "node_modules", "onnxruntime-node", "package.json")
	if _, err := os.Stat(pkg); err == nil {
		return dir, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm is not installed (Debian package npm), so onnxruntime-node cannot be installed into %s", dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	// Installed beside the final place and renamed, so that concurrent test
	// processes never see half an installation. The package's install script
	// only fetches optional GPU providers; the CPU binary is in the tarball.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".ort-install-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	out, err := exec.Command(npm, "install", "--prefix", tmp, "--ignore-scripts", "--no-audit", "--no-fund",
		"onnxruntime-node@"+ONNXRuntimeVersion).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("npm install onnxruntime-node@%s: %v\n%s", ONNXRuntimeVersion, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(pkg); statErr != nil { // another process won the race otherwise
			return "", err
		}
	}
	return dir, nil
})

// ONNXRuntime returns node and a directory whose node_modules holds
// onnxruntime-node (installed with npm into ~/.cache/ecotune/npm on first use),
// or skips (fails) as Require does when node or the package is unavailable.
func ONNXRuntime(tb testing.TB) (node, dir string) {
	tb.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		Missing(tb, "node (Debian package nodejs) is missing")
		return "", ""
	}
	dir, err = installORT()
	if err != nil {
		Missing(tb, "onnxruntime-node is unavailable: "+err.Error())
		return "", ""
	}
	return node, dir
}
