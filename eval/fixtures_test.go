package eval

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
)

// fixturePath returns the path of a file under the repository's testdata/ (see
// testdata/README.md; the files there come from sacreBLEU's and rouge-score's own test
// suites), skipping the test when it is absent, or failing it as testenv.Require does.
func fixturePath(t *testing.T, rel string) string {
	t.Helper()
	return testenv.Testdata(t, filepath.FromSlash(rel))
}

// loadFixtureJSON decodes a JSON fixture into v, skipping when absent.
func loadFixtureJSON(t *testing.T, rel string, v any) {
	t.Helper()
	data, err := os.ReadFile(fixturePath(t, rel))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, v), "decode %s", rel)
}
