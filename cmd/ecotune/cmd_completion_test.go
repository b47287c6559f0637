package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCompletion(t *testing.T) {
	// urfave/cli reads os.Args for completions, so the candidates themselves are
	// checked through a built binary in TestBashCompletionScript.
	code, out, _ := runCLI(t, "completion", "bash")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "complete -o filenames -F _ecotune_complete ecotune")
	code, _, _ = runCLI(t, "completion", "fish")
	assert.Equal(t, exitUsage, code)
}

// TestBashCompletionScript sources the script in bash against a built binary.
func TestBashCompletionScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	bin := filepath.Join(t.TempDir(), "ecotune")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	script := `source <("$BIN" completion bash)
COMP_WORDS=("$BIN" pu); COMP_CWORD=1; _ecotune_complete; echo "${COMPREPLY[@]}"
COMP_WORDS=("$BIN" train --lora.tar); COMP_CWORD=2; _ecotune_complete; echo "${COMPREPLY[@]}"`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(cmd.Environ(), "BIN="+bin)
	got, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", got)
	assert.Equal(t, "pull\n--lora.targets", strings.TrimSpace(string(got)))
}
