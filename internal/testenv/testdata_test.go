package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testdataRow is a row of a file table in testdata/README.md:
// | `path under testdata/` | bytes (digits, commas allowed) | `sha256` |
var testdataRow = regexp.MustCompile("^\\|\\s*`([^`]+)`\\s*\\|\\s*([0-9][0-9,]*)\\s*\\|\\s*`([0-9a-f]{64})`\\s*\\|\\s*$")

// fileRow is what a README's table says of one file.
type fileRow struct {
	size   int64
	sha256 string
}

// readmeRows parses the file tables of a README.
func readmeRows(readme string) (map[string]fileRow, error) {
	rows := map[string]fileRow{}
	for i, line := range strings.Split(readme, "\n") {
		m := testdataRow.FindStringSubmatch(strings.TrimRight(line, "\r"))
		if m == nil {
			continue
		}
		size, err := strconv.ParseInt(strings.ReplaceAll(m[2], ",", ""), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if _, dup := rows[m[1]]; dup {
			return nil, fmt.Errorf("line %d: %s is listed twice", i+1, m[1])
		}
		rows[m[1]] = fileRow{size, m[3]}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no file table")
	}
	return rows, nil
}

func sha256Of(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkTestdata compares dir with the file tables of dir/README.md and returns how many
// files the tables list and every difference: a listed file that is missing or whose size
// or sha256 differs, and a file that no table lists.
func checkTestdata(dir string) (int, []string, error) {
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		return 0, nil, err
	}
	rows, err := readmeRows(string(readme))
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", filepath.Join(dir, "README.md"), err)
	}
	var problems []string
	for _, rel := range slices.Sorted(maps.Keys(rows)) {
		want := rows[rel]
		path := filepath.Join(dir, filepath.FromSlash(rel))
		info, err := os.Stat(path)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s is listed in README.md but cannot be read: %v", rel, err))
			continue
		}
		if info.Size() != want.size {
			problems = append(problems, fmt.Sprintf("%s has %d bytes, README.md says %d", rel, info.Size(), want.size))
		}
		sum, err := sha256Of(path)
		if err != nil {
			return 0, nil, err
		}
		if sum != want.sha256 {
			problems = append(problems, fmt.Sprintf("%s has sha256 %s, README.md says %s", rel, sum, want.sha256))
		}
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if _, listed := rows[rel]; !listed && rel != "README.md" {
			problems = append(problems, rel+" is in no table of README.md (each file needs its origin, license, bytes and sha256 there)")
		}
		return nil
	})
	return len(rows), problems, err
}

// TestTestdataHashes checks that every file testdata/README.md lists is there with the size
// and sha256 given, and that it lists every file there.
func TestTestdataHashes(t *testing.T) {
	n, problems, err := checkTestdata(TestdataDir())
	require.NoError(t, err)
	assert.Empty(t, problems)
	assert.GreaterOrEqual(t, n, 9, "the tables list fewer files than testdata/ held when this test was written")
	t.Logf("%d files checked", n)
}

// TestCheckTestdata shows that checkTestdata notices a changed byte, a changed size, a
// missing file and an unlisted one.
func TestCheckTestdata(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		path := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	}
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" // sha256 of "abc"
	write("README.md", "# x\n\n| file | bytes | sha256 |\n| --- | ---: | --- |\n| `sub/a.txt` | 3 | `"+abc+"` |\n")

	for _, c := range []struct {
		name  string
		setup func()
		want  []string // substrings of the problems, in order
	}{
		{"intact", func() { write("sub/a.txt", "abc") }, nil},
		{"changed byte", func() { write("sub/a.txt", "abd") }, []string{"sub/a.txt has sha256 a52d159f"}},
		{"changed size", func() { write("sub/a.txt", "abcd") }, []string{"sub/a.txt has 4 bytes, README.md says 3", "sub/a.txt has sha256"}},
		{"missing", func() { require.NoError(t, os.Remove(filepath.Join(dir, "sub", "a.txt"))) }, []string{"sub/a.txt is listed in README.md but cannot be read"}},
		{"unlisted", func() { write("sub/a.txt", "abc"); write("b.txt", "") }, []string{"b.txt is in no table"}},
	} {
		c.setup()
		n, problems, err := checkTestdata(dir)
		require.NoError(t, err, c.name)
		assert.Equal(t, 1, n, c.name)
		if assert.Len(t, problems, len(c.want), "%s: %q", c.name, problems) {
			for i, w := range c.want {
				assert.Contains(t, problems[i], w, c.name)
			}
		}
	}

	write("README.md", "# no table\n")
	_, _, err := checkTestdata(dir)
	assert.ErrorContains(t, err, "no file table")
}
