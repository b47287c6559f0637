package plot

import (
	"bytes"
	"encoding/xml"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		n      int
		want   []float64
		step   float64
	}{
		// Worked by hand from Heckbert's rules: span → nice, step → rounded nice.
		{0, 100, 6, []float64{0, 20, 40, 60, 80, 100}, 20},
		{3.2, 7.9, 5, []float64{3, 4, 5, 6, 7, 8}, 1},
		{0.0001, 0.001, 5, []float64{0, 0.0002, 0.0004, 0.0006, 0.0008, 0.001}, 0.0002},
		{-1.3, 2.6, 5, []float64{-2, -1, 0, 1, 2, 3}, 1},
		{2.31, 2.35, 5, []float64{2.31, 2.32, 2.33, 2.34, 2.35}, 0.01},
		{5, 5, 5, []float64{4.4, 4.6, 4.8, 5, 5.2, 5.4, 5.6}, 0.2}, // widened by |v|/10
		{0, 0, 5, []float64{-1, -0.5, 0, 0.5, 1}, 0.5},
	} {
		got, step := Ticks(tc.lo, tc.hi, tc.n)
		assert.InDelta(t, tc.step, step, tc.step*1e-9, "step of [%v, %v]", tc.lo, tc.hi)
		require.Len(t, got, len(tc.want), "ticks of [%v, %v]: %v", tc.lo, tc.hi, got)
		for i := range got {
			assert.InDelta(t, tc.want[i], got[i], tc.step*1e-9, "tick %d of [%v, %v]", i, tc.lo, tc.hi)
		}
	}
}

func TestFormatTicks(t *testing.T) {
	assert.Equal(t, []string{"0", "20", "40"}, FormatTicks([]float64{0, 20, 40}, 20))
	assert.Equal(t, []string{"2.30", "2.31"}, FormatTicks([]float64{2.3, 2.31}, 0.01))
	assert.Equal(t, []string{"-0.5", "0", "0.5"}, FormatTicks([]float64{-0.5, 0, 0.5}, 0.5))
	// Learning rates: one exponent style for the whole axis.
	assert.Equal(t, []string{"0", "2.0e-04", "1.0e-03"}, FormatTicks([]float64{0, 0.0002, 0.001}, 0.0002))
	assert.Equal(t, []string{"1e+06", "2e+06"}, FormatTicks([]float64{1e6, 2e6}, 1e6))
}

// svgDoc is the part of an SVG document the tests read back.
type svgDoc struct {
	Width  int    `xml:"width,attr"`
	Height int    `xml:"height,attr"`
	Title  string `xml:"title"`
	Paths  []struct {
		Series string `xml:"data-series,attr"`
		D      string `xml:"d,attr"`
		Stroke string `xml:"stroke,attr"`
		Dash   string `xml:"stroke-dasharray,attr"`
	} `xml:"path"`
	Circles []struct {
		CX float64 `xml:"cx,attr"`
		CY float64 `xml:"cy,attr"`
	} `xml:"circle"`
	Texts []string `xml:"text"`
	Gs    []struct {
		Class string   `xml:"class,attr"`
		Texts []string `xml:"text"`
	} `xml:"g"`
}

func parseSVG(t *testing.T, b []byte) svgDoc {
	t.Helper()
	var doc svgDoc
	require.NoError(t, xml.Unmarshal(b, &doc), "well-formed XML:\n%s", b)
	return doc
}

var pointRE = regexp.MustCompile(`([ML])(-?[0-9.]+) (-?[0-9.]+)`)

// points parses an SVG path's M/L commands.
func points(t *testing.T, d string) (cmds []string, xy [][2]float64) {
	t.Helper()
	for _, m := range pointRE.FindAllStringSubmatch(d, -1) {
		x, err := strconv.ParseFloat(m[2], 64)
		require.NoError(t, err)
		y, err := strconv.ParseFloat(m[3], 64)
		require.NoError(t, err)
		cmds = append(cmds, m[1])
		xy = append(xy, [2]float64{x, y})
	}
	return cmds, xy
}

func TestLineChartSVG(t *testing.T) {
	c := LineChart{
		Title: "loss <train & val>", XLabel: "step", YLabel: "nats", Width: 400, Height: 300,
		Series: []Series{
			{Name: "train", X: []float64{0, 50, 100}, Y: []float64{4, 3, 2}},
			{Name: "val", X: []float64{0, 100}, Y: []float64{4, 2.5}, Dashed: true, Color: "#000000"},
		},
	}
	out := c.SVG()
	assert.Equal(t, out, c.SVG(), "deterministic")
	assert.NotContains(t, string(out), "<script")
	assert.NotContains(t, string(out), "http://www.w3.org/2000/svg\"\n", "namespace only")
	doc := parseSVG(t, out)
	assert.Equal(t, 400, doc.Width)
	assert.Equal(t, 300, doc.Height)
	assert.Equal(t, "loss <train & val>", doc.Title, "escaped and read back")
	require.Len(t, doc.Paths, 2)

	// x ticks 0..100 by 20, y ticks 2..4 by 0.5, so the domain is exactly the data's:
	// the first train point sits at the plot area's left edge, y=4 at its top, y=2 at
	// its bottom; x=50 halfway.
	left, right, top, bottom := 64.0, 400.0-16, 32.0, 300.0-44
	cmds, xy := points(t, doc.Paths[0].D)
	assert.Equal(t, []string{"M", "L", "L"}, cmds)
	assert.Equal(t, [][2]float64{{left, top}, {(left + right) / 2, (top + bottom) / 2}, {right, bottom}}, xy)
	assert.Equal(t, Palette[0], doc.Paths[0].Stroke)
	assert.Equal(t, "train", doc.Paths[0].Series)

	_, xy = points(t, doc.Paths[1].D)
	assert.InDelta(t, bottom-(2.5-2)/(4-2)*(bottom-top), xy[1][1], 0.01)
	assert.Equal(t, "#000000", doc.Paths[1].Stroke)
	assert.Equal(t, "6 4", doc.Paths[1].Dash)

	var legend, ticks []string
	for _, g := range doc.Gs {
		switch g.Class {
		case "legend":
			legend = append(legend, g.Texts...)
		case "ticks":
			ticks = g.Texts
		}
	}
	assert.Equal(t, []string{"train", "val"}, legend)
	assert.Equal(t, []string{"0", "20", "40", "60", "80", "100", "2.0", "2.5", "3.0", "3.5", "4.0"}, ticks)
	assert.Contains(t, doc.Texts, "step")
	assert.Contains(t, doc.Texts, "nats")
}

func TestLineChartGapsAndEdgeCases(t *testing.T) {
	nan := math.NaN()
	c := LineChart{Series: []Series{{Name: "a", X: []float64{0, 1, 2, 3, 4, 5}, Y: []float64{1, 2, nan, 3, nan, 5}}}}
	doc := parseSVG(t, c.SVG())
	require.Len(t, doc.Paths, 1)
	cmds, _ := points(t, doc.Paths[0].D)
	// 0-1 joined; 3 and 5 have no finite neighbour, so they are dots, not path points.
	assert.Equal(t, []string{"M", "L"}, cmds)
	require.Len(t, doc.Circles, 2)
	// x ticks 0..5 by 1 span 64..624 px; y ticks 1..5 span 316..32 px.
	assert.Equal(t, 64+3.0/5*560, doc.Circles[0].CX)
	assert.Equal(t, 316-2.0/4*284, doc.Circles[0].CY)

	// No finite point: axes and a "no data" note, no path.
	empty := LineChart{Title: "empty", Series: []Series{{Name: "x", X: []float64{nan}, Y: []float64{1}}}}
	doc = parseSVG(t, empty.SVG())
	assert.Empty(t, doc.Paths)
	assert.Contains(t, doc.Texts, "no data")

	// Control characters are dropped, since XML 1.0 cannot carry them.
	ctl := LineChart{Title: "a\x01b"}
	assert.True(t, bytes.Contains(ctl.SVG(), []byte("<title>ab</title>")))
	assert.False(t, strings.Contains(string(ctl.SVG()), "\x01"))
}
