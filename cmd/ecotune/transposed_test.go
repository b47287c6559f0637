package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeepTransposedMode(t *testing.T) {
	small := filepath.Join(t.TempDir(), "m.gguf")
	require.NoError(t, os.WriteFile(small, make([]byte, 1024), 0o644))
	for mode, want := range map[string]bool{"on": true, "off": false, "auto": true, "": true} {
		got, err := keepTransposed(mode, small, false)
		require.NoError(t, err, mode)
		assert.Equal(t, want, got, "mode %q on a 1 KiB model", mode)
	}
	_, err := keepTransposed("sometimes", small, false)
	assert.ErrorContains(t, err, "want auto, on or off")
	_, err = keepTransposed("auto", filepath.Join(t.TempDir(), "missing.gguf"), false)
	assert.Error(t, err)
	got, err := keepTransposed("on", "missing.gguf", false)
	require.NoError(t, err, "on and off need no file")
	assert.True(t, got)
}
