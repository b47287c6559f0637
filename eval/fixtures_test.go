package eval

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// fixturesDir is the shared fixtures folder beside the repository root
// (see shared/fixtures/README.md); the files there come from sacreBLEU's
// and rouge-score's own test suites.
const fixturesDir = "../../shared/fixtures"

// fixturePath returns the path of a fixture file, skipping the test with
// the reason when the shared fixtures are not checked out.
func fixturePath(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(fixturesDir, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("fixture %s not available (the shared/ folder beside the repo root holds it): %v", p, err)
	}
	return p
}

// loadFixtureJSON decodes a JSON fixture into v, skipping when absent.
func loadFixtureJSON(t *testing.T, rel string, v any) {
	t.Helper()
	data, err := os.ReadFile(fixturePath(t, rel))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, v), "decode %s", rel)
}
