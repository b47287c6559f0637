// Package plot draws line charts as standalone SVG, in pure Go with no
// dependencies, so that reports and training runs can ship their charts as
// files that any browser shows without network access.
//
// A typical use, a loss curve:
//
//	chart := plot.LineChart{
//		Title:  "loss",
//		XLabel: "step",
//		Series: []plot.Series{{Name: "train", X: steps, Y: losses}},
//	}
//	if err := os.WriteFile("loss.svg", chart.SVG(), 0o644); err != nil {
//		return err
//	}
//
// The output is deterministic: the same chart gives the same bytes.
package plot

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Series is one line of a chart: points (X[i], Y[i]) joined in order. A point
// with a NaN or infinite coordinate is left out and breaks the line there.
type Series struct {
	Name   string    // legend text; "" leaves the series out of the legend
	X, Y   []float64 // equal lengths
	Color  string    // CSS colour; "" takes the next one of Palette
	Dashed bool      // draw the line dashed
}

// Palette is the colours series get in order when they name none (the
// colour-blind-safe Tableau 10 order).
var Palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

// LineChart is a chart of one or more series on shared linear axes.
type LineChart struct {
	Title  string   // drawn centred above the plot area
	XLabel string   // drawn under the x axis
	YLabel string   // drawn rotated left of the y axis
	Width  int      // pixels; 0 means DefaultWidth
	Height int      // pixels; 0 means DefaultHeight
	Series []Series // drawn in order, later ones on top
}

// Default chart size in pixels.
const (
	DefaultWidth  = 640
	DefaultHeight = 360
)

// Margins around the plot area, in pixels: room for the title, tick labels
// and axis labels.
const (
	marginLeft   = 64
	marginRight  = 16
	marginTop    = 32
	marginBottom = 44
)

// frame maps data coordinates to pixels.
type frame struct {
	x0, x1, y0, y1   float64 // data domain (after rounding to ticks)
	left, right, top float64 // plot area in pixels
	bottom           float64
	xTicks, yTicks   []float64
	xStep, yStep     float64
	width, height    int
	hasData          bool
}

func (f *frame) px(x float64) float64 {
	return f.left + (x-f.x0)/(f.x1-f.x0)*(f.right-f.left)
}

func (f *frame) py(y float64) float64 {
	return f.bottom - (y-f.y0)/(f.y1-f.y0)*(f.bottom-f.top)
}

// layout computes the axes' domains and ticks from the finite points.
func (c *LineChart) layout() frame {
	f := frame{width: c.Width, height: c.Height}
	if f.width <= 0 {
		f.width = DefaultWidth
	}
	if f.height <= 0 {
		f.height = DefaultHeight
	}
	f.left, f.right = marginLeft, float64(f.width-marginRight)
	f.top, f.bottom = marginTop, float64(f.height-marginBottom)
	xlo, xhi, ylo, yhi := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for i := range min(len(s.X), len(s.Y)) {
			x, y := s.X[i], s.Y[i]
			if !finite(x) || !finite(y) {
				continue
			}
			xlo, xhi = min(xlo, x), max(xhi, x)
			ylo, yhi = min(ylo, y), max(yhi, y)
			f.hasData = true
		}
	}
	if !f.hasData {
		xlo, xhi, ylo, yhi = 0, 1, 0, 1
	}
	f.xTicks, f.xStep = Ticks(xlo, xhi, 6)
	f.yTicks, f.yStep = Ticks(ylo, yhi, 5)
	f.x0, f.x1 = f.xTicks[0], f.xTicks[len(f.xTicks)-1]
	f.y0, f.y1 = f.yTicks[0], f.yTicks[len(f.yTicks)-1]
	return f
}

// Ticks returns about n evenly spaced round values (steps of 1, 2 or 5 times a
// power of ten) whose first is ≤ lo and last ≥ hi, and the step between them.
// A zero-width range is widened around its value. It is Heckbert's "nice
// numbers" labelling (Graphics Gems, 1990).
func Ticks(lo, hi float64, n int) ([]float64, float64) {
	n = max(n, 2)
	if lo > hi {
		lo, hi = hi, lo
	}
	if lo == hi {
		d := math.Abs(lo) / 10
		if d == 0 {
			d = 1
		}
		lo, hi = lo-d, hi+d
	}
	span := niceNum(hi-lo, false)
	step := niceNum(span/float64(n-1), true)
	// The tolerance keeps 1e-3/2e-4 = 5.000000000000001 from adding a tick.
	first := math.Floor(lo/step+1e-9) * step
	last := math.Ceil(hi/step-1e-9) * step
	var ticks []float64
	for k := 0; ; k++ {
		// Multiply rather than accumulate, so 0.1 steps do not drift.
		v := first + float64(k)*step
		if math.Abs(v) < step*1e-9 {
			v = 0
		}
		ticks = append(ticks, v)
		if v >= last-step*1e-9 {
			break
		}
	}
	return ticks, step
}

// niceNum returns a 1, 2, 5 (or 10) times a power of ten near x: rounded when
// round is set, otherwise the smallest such number ≥ x.
func niceNum(x float64, round bool) float64 {
	exp := math.Floor(math.Log10(x))
	f := x / math.Pow(10, exp)
	var nf float64
	switch {
	case round && f < 1.5:
		nf = 1
	case round && f < 3:
		nf = 2
	case round && f < 7:
		nf = 5
	case round:
		nf = 10
	case f <= 1:
		nf = 1
	case f <= 2:
		nf = 2
	case f <= 5:
		nf = 5
	default:
		nf = 10
	}
	return nf * math.Pow(10, exp)
}

// FormatTicks renders an axis' tick values with as many decimals as the step
// needs, all in exponent form when the axis holds only very small or very large
// values (learning rates, token counts), so labels of one axis look alike.
func FormatTicks(ticks []float64, step float64) []string {
	maxAbs := 0.0
	for _, t := range ticks {
		maxAbs = max(maxAbs, math.Abs(t))
	}
	stepExp := math.Floor(math.Log10(step) + 1e-9)
	out := make([]string, len(ticks))
	for i, t := range ticks {
		switch {
		case t == 0:
			out[i] = "0"
		case maxAbs < 1e-2 || maxAbs >= 1e6:
			digits := int(math.Floor(math.Log10(maxAbs)+1e-9) - stepExp)
			out[i] = strconv.FormatFloat(t, 'e', min(max(digits, 0), 6), 64)
		default:
			out[i] = strconv.FormatFloat(t, 'f', max(0, int(-stepExp)), 64)
		}
	}
	return out
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// SVG renders the chart as a standalone SVG document (no scripts, fonts or
// external references).
func (c *LineChart) SVG() []byte {
	f := c.layout()
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s" font-family="sans-serif" font-size="11">`+"\n",
		f.width, f.height, f.width, f.height, esc(c.Title))
	if c.Title != "" {
		fmt.Fprintf(&b, "<title>%s</title>\n", esc(c.Title))
	}
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", f.width, f.height)
	if c.Title != "" {
		fmt.Fprintf(&b, `<text x="%s" y="20" text-anchor="middle" font-size="14" font-weight="bold">%s</text>`+"\n",
			num(float64(f.width)/2), esc(c.Title))
	}

	// Grid and tick labels.
	b.WriteString(`<g class="grid" stroke="#e0e0e0" stroke-width="1">` + "\n")
	for _, t := range f.xTicks {
		x := f.px(t)
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", num(x), num(f.top), num(x), num(f.bottom))
	}
	for _, t := range f.yTicks {
		y := f.py(t)
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", num(f.left), num(y), num(f.right), num(y))
	}
	b.WriteString("</g>\n")
	b.WriteString(`<g class="ticks" fill="#333333">` + "\n")
	for i, label := range FormatTicks(f.xTicks, f.xStep) {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", num(f.px(f.xTicks[i])), num(f.bottom+14), label)
	}
	for i, label := range FormatTicks(f.yTicks, f.yStep) {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end">%s</text>`+"\n", num(f.left-6), num(f.py(f.yTicks[i])+4), label)
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(&b, `<rect class="frame" x="%s" y="%s" width="%s" height="%s" fill="none" stroke="#666666"/>`+"\n",
		num(f.left), num(f.top), num(f.right-f.left), num(f.bottom-f.top))
	if c.XLabel != "" {
		fmt.Fprintf(&b, `<text x="%s" y="%d" text-anchor="middle">%s</text>`+"\n", num((f.left+f.right)/2), f.height-8, esc(c.XLabel))
	}
	if c.YLabel != "" {
		y := (f.top + f.bottom) / 2
		fmt.Fprintf(&b, `<text x="14" y="%s" text-anchor="middle" transform="rotate(-90 14 %s)">%s</text>`+"\n", num(y), num(y), esc(c.YLabel))
	}
	if !f.hasData {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" fill="#999999">no data</text>`+"\n",
			num((f.left+f.right)/2), num((f.top+f.bottom)/2))
	}

	// Lines, then single points that have no neighbour to join.
	for i, s := range c.Series {
		color := seriesColor(s, i)
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		// Split the points into unbroken runs; a run of one point has no line to
		// draw and becomes a dot.
		var runs [][][2]float64
		var cur [][2]float64
		for k := range min(len(s.X), len(s.Y)) {
			x, y := s.X[k], s.Y[k]
			if !finite(x) || !finite(y) {
				if len(cur) > 0 {
					runs, cur = append(runs, cur), nil
				}
				continue
			}
			cur = append(cur, [2]float64{f.px(x), f.py(y)})
		}
		if len(cur) > 0 {
			runs = append(runs, cur)
		}
		var d strings.Builder
		var lone [][2]float64
		for _, r := range runs {
			if len(r) == 1 {
				lone = append(lone, r[0])
				continue
			}
			for k, p := range r {
				cmd := "L"
				if k == 0 {
					cmd = "M"
				}
				fmt.Fprintf(&d, "%s%s %s", cmd, num(p[0]), num(p[1]))
			}
		}
		if d.Len() > 0 {
			fmt.Fprintf(&b, `<path class="series" data-series="%s" d="%s" fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round"%s/>`+"\n",
				esc(s.Name), d.String(), esc(color), dash)
		}
		for _, p := range lone {
			fmt.Fprintf(&b, `<circle class="point" data-series="%s" cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", esc(s.Name), num(p[0]), num(p[1]), esc(color))
		}
	}

	// Legend: one row in the top margin, right-aligned, so it never hides a line.
	// Text width is estimated at 7 px per character (11 px sans-serif).
	type entry struct {
		s     Series
		color string
		width float64
	}
	var legend []entry
	total := 0.0
	for i, s := range c.Series {
		if s.Name == "" {
			continue
		}
		e := entry{s: s, color: seriesColor(s, i), width: 22 + 7*float64(len([]rune(s.Name))) + 12}
		legend = append(legend, e)
		total += e.width
	}
	x, y := f.right-total+12, f.top-8
	for _, e := range legend {
		fmt.Fprintf(&b, `<g class="legend"><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"%s/><text x="%s" y="%s">%s</text></g>`+"\n",
			num(x), num(y-4), num(x+18), num(y-4), esc(e.color), dashAttr(e.s.Dashed), num(x+22), num(y), esc(e.s.Name))
		x += e.width
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func seriesColor(s Series, i int) string {
	if s.Color != "" {
		return s.Color
	}
	return Palette[i%len(Palette)]
}

func dashAttr(dashed bool) string {
	if dashed {
		return ` stroke-dasharray="6 4"`
	}
	return ""
}

// num formats a pixel coordinate with at most two decimals.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

// esc escapes text for SVG/XML content and attributes.
func esc(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&#39;")
		default:
			if r < 0x20 && r != '\t' && r != '\n' && r != '\r' {
				continue // not allowed in XML 1.0
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}
