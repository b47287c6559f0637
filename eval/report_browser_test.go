package eval

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/plot"
)

// chromiumPath finds Debian's chromium, skipping the test when it is absent unless
// testenv.Strict (make deps installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "chromium is not installed (make deps installs it, or apt-get install chromium)")
	return ""
}

// artifactDir is where the test keeps its screenshot: $ECOTUNE_ARTIFACTS/<test> when
// set, else the test's artifact directory (kept with go test -artifacts).
func artifactDir(t *testing.T) string {
	t.Helper()
	if root := os.Getenv("ECOTUNE_ARTIFACTS"); root != "" {
		dir := filepath.Join(root, "eval", t.Name())
		require.NoError(t, os.MkdirAll(dir, 0o755))
		return dir
	}
	return t.ArtifactDir()
}

// runChromium runs headless chromium with its own profile directory and returns stdout.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir()}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "chromium failed; stderr:\n%s", stderr.String())
	return stdout.Bytes()
}

// countColor counts the pixels of img within tol of c in each channel.
func countColor(img image.Image, c color.RGBA, tol int) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			d := func(v uint32, w uint8) bool { return absInt(int(v>>8)-int(w)) <= tol }
			if d(r, c.R) && d(g, c.G) && d(bl, c.B) {
				n++
			}
		}
	}
	return n
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func TestReportInChromium(t *testing.T) {
	bin := chromiumPath(t)
	rep := sampleReport(t)
	dir := t.TempDir()
	require.NoError(t, WriteReport(dir, rep))
	page := "file://" + filepath.Join(dir, "report.html")

	// The DOM chromium built: one row per system with every metric cell, and the
	// charts' SVG paths, as parsed by a browser rather than by us.
	dom := string(runChromium(t, bin, "--dump-dom", page))
	rows := regexp.MustCompile(`(?s)<tr class="system">(.*?)</tr>`).FindAllStringSubmatch(dom, -1)
	require.Len(t, rows, 2, "metric rows in:\n%s", dom)
	for _, r := range rows {
		assert.Equal(t, len(metricColumns)+2, strings.Count(r[1], "<td"), "name, metrics, tokens/s")
	}
	assert.Contains(t, rows[1][1], "75.00")
	assert.Equal(t, 4, strings.Count(dom, `<path class="series"`), "train and validation loss, learning rate, throughput")
	assert.Regexp(t, `<path class="series" data-series="train" d="M[0-9.]+ [0-9.]+(L[0-9.]+ [0-9.]+){39}"`, dom, "40 training steps")

	// The rendering: a screenshot whose pixels show the first series' colour (the chart
	// lines) and the table header's background.
	shot := filepath.Join(artifactDir(t), "report.png")
	runChromium(t, bin, "--window-size=1280,1600", "--screenshot="+shot, page)
	f, err := os.Open(shot)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	assert.Equal(t, 1280, img.Bounds().Dx())
	line := countColor(img, hexRGBA(t, plot.Palette[0]), 24)
	header := countColor(img, color.RGBA{0xee, 0xf3, 0xf8, 0xff}, 2)
	t.Logf("screenshot %s: %d chart-line pixels, %d header pixels", shot, line, header)
	assert.Greater(t, line, 500, "chart lines drawn")
	assert.Greater(t, header, 2000, "table header drawn")
}

// hexRGBA parses #rrggbb.
func hexRGBA(t *testing.T, s string) color.RGBA {
	t.Helper()
	var c color.RGBA
	c.A = 0xff
	_, err := fmtSscanf(s, &c)
	require.NoError(t, err)
	return c
}

func fmtSscanf(s string, c *color.RGBA) (int, error) {
	return fmt.Sscanf(s, "#%02x%02x%02x", &c.R, &c.G, &c.B)
}
