package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"strings"
)

// ReportExamplesShown is how many examples report.md and report.html show
// per section (gains, regressions, unchanged); report.json holds them all.
const ReportExamplesShown = 25

// WriteReport writes r into dir as report.json (everything), report.md (the
// metric table and the examples that changed most) and report.html (the same
// plus training curves, one self-contained file: inline CSS and SVG, no
// scripts, fonts or network references). dir is created if needed.
func WriteReport(dir string, r *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	html, err := r.HTML()
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"report.json": append(js, '\n'),
		"report.md":   []byte(r.Markdown()),
		"report.html": html,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

// metricColumn is one column of the metric table.
type metricColumn struct {
	name  string
	value func(SystemResult) (float64, bool)
	// lowerBetter marks loss-like columns, whose improvement is a decrease.
	lowerBetter bool
}

var metricColumns = []metricColumn{
	{name: "EM", value: func(s SystemResult) (float64, bool) { return s.Table.ExactMatch, true }},
	{name: "F1", value: func(s SystemResult) (float64, bool) { return s.Table.F1, true }},
	{name: "BLEU", value: func(s SystemResult) (float64, bool) { return s.Table.BLEU.Score, true }},
	{name: "ROUGE-1", value: func(s SystemResult) (float64, bool) { return s.Table.Rouge1, true }},
	{name: "ROUGE-2", value: func(s SystemResult) (float64, bool) { return s.Table.Rouge2, true }},
	{name: "ROUGE-L", value: func(s SystemResult) (float64, bool) { return s.Table.RougeL, true }},
	{name: "loss", lowerBetter: true, value: func(s SystemResult) (float64, bool) {
		if s.Loss == nil {
			return 0, false
		}
		return s.Loss.MeanNLL, true
	}},
	{name: "perplexity", lowerBetter: true, value: func(s SystemResult) (float64, bool) {
		if s.Loss == nil {
			return 0, false
		}
		return s.Loss.Perplexity, true
	}},
}

// metricCell is one formatted cell: the value and, for adapted systems, the
// change from the base system.
type metricCell struct {
	Value, Delta string
	Better       bool // the change is an improvement
	Worse        bool
}

// metricRows formats the metric table, one row per system.
func (r *Report) metricRows() [][]metricCell {
	rows := make([][]metricCell, len(r.Systems))
	for i, s := range r.Systems {
		for _, col := range metricColumns {
			v, ok := col.value(s)
			if !ok {
				rows[i] = append(rows[i], metricCell{Value: "–"})
				continue
			}
			cell := metricCell{Value: fmt.Sprintf("%.2f", v)}
			if base, ok := col.value(r.Systems[0]); ok && i > 0 {
				d := v - base
				cell.Delta = fmt.Sprintf("%+.2f", d)
				if col.lowerBetter {
					d = -d
				}
				cell.Better, cell.Worse = d > 0.005, d < -0.005
			}
			rows[i] = append(rows[i], cell)
		}
	}
	return rows
}

// sections splits the examples into gains, regressions (worst first) and
// unchanged ones, each cut to ReportExamplesShown. With one system every
// example is "unchanged".
func (r *Report) sections() (gains, regressions, same []ExampleResult) {
	for _, e := range r.Examples {
		switch {
		case e.Delta > 0:
			gains = append(gains, e)
		case e.Delta < 0:
			regressions = append([]ExampleResult{e}, regressions...) // Examples are sorted by falling Delta
		default:
			same = append(same, e)
		}
	}
	cut := func(x []ExampleResult) []ExampleResult { return x[:min(len(x), ReportExamplesShown)] }
	return cut(gains), cut(regressions), cut(same)
}

// Markdown renders the report as Markdown.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Evaluation report\n\n")
	fmt.Fprintf(&b, "%s\n\n", r.summaryLine())
	b.WriteString("## Metrics\n\n")
	b.WriteString("All metrics are percentages except loss (mean NLL of the reference tokens, nats) and perplexity; changes are against the base model.\n\n")
	b.WriteString("| system |")
	for _, c := range metricColumns {
		fmt.Fprintf(&b, " %s |", c.name)
	}
	b.WriteString(" tokens/s |\n| --- |")
	for range metricColumns {
		b.WriteString(" ---: |")
	}
	b.WriteString(" ---: |\n")
	for i, row := range r.metricRows() {
		fmt.Fprintf(&b, "| %s |", mdCell(r.Systems[i].label()))
		for _, c := range row {
			if c.Delta != "" {
				fmt.Fprintf(&b, " %s (%s) |", c.Value, c.Delta)
			} else {
				fmt.Fprintf(&b, " %s |", c.Value)
			}
		}
		fmt.Fprintf(&b, " %.0f |\n", r.Systems[i].TokensPerSec)
	}
	gains, regressions, same := r.sections()
	writeSection := func(title string, ex []ExampleResult) {
		if len(ex) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n## %s\n", title)
		for _, e := range ex {
			fmt.Fprintf(&b, "\n### %s", e.label())
			if len(r.Systems) > 1 {
				fmt.Fprintf(&b, " (F1 %+.1f)", e.Delta)
			}
			b.WriteString("\n\n**Prompt**\n\n")
			b.WriteString(mdQuote(e.Prompt))
			b.WriteString("\n**Reference**\n\n")
			b.WriteString(mdQuote(strings.Join(e.References, "\n— or —\n")))
			b.WriteString("\n| system | answer | F1 | ROUGE-L |\n| --- | --- | ---: | ---: |\n")
			for i, o := range e.Outputs {
				fmt.Fprintf(&b, "| %s | %s | %.1f | %.1f |\n", mdCell(r.Systems[i].Name), mdCell(o.Text), 100*o.Scores.F1, 100*o.Scores.RougeL.FMeasure)
			}
		}
	}
	if len(r.Systems) > 1 {
		writeSection(fmt.Sprintf("Largest gains (%s vs %s, token F1)", r.Systems[1].Name, r.Systems[0].Name), gains)
		writeSection("Largest regressions", regressions)
		writeSection("Unchanged", same)
	} else {
		writeSection("Examples", same)
	}
	if r.Training != nil {
		b.WriteString("\n## Training\n\n")
		b.WriteString(r.trainingSummary())
		b.WriteString("\n\nThe curves are in report.html.\n")
	}
	return b.String()
}

// summaryLine describes the run in one line.
func (r *Report) summaryLine() string {
	s := fmt.Sprintf("Model `%s`", r.Model)
	if r.Data != "" {
		s += fmt.Sprintf(", data `%s`", r.Data)
	}
	mode := "greedy"
	if r.Options.Temperature > 0 {
		mode = fmt.Sprintf("temperature %.2g, seed %d", r.Options.Temperature, r.Options.Seed)
	}
	s += fmt.Sprintf(", %d examples, %s decoding, at most %d new tokens", len(r.Examples), mode, r.Options.MaxTokens)
	if r.Options.Chat {
		s += ", chat template"
	}
	if len(r.Options.Stop) > 0 {
		s += fmt.Sprintf(", stop strings %q", r.Options.Stop)
	}
	return s + "."
}

// trainingSummary describes the training log in one line.
func (r *Report) trainingSummary() string {
	t := r.Training
	s := fmt.Sprintf("`%s`: %d training steps", t.Path, len(t.Train))
	if n := len(t.Train); n > 0 {
		s += fmt.Sprintf(", training loss %.4f → %.4f", t.Train[0].Loss, t.Train[n-1].Loss)
	}
	if n := len(t.Eval); n > 0 {
		s += fmt.Sprintf(", validation loss %.4f → %.4f", t.Eval[0].Loss, t.Eval[n-1].Loss)
	}
	return s + "."
}

func (s SystemResult) label() string {
	if len(s.Adapters) == 0 {
		return s.Name
	}
	return fmt.Sprintf("%s (%s)", s.Name, strings.Join(s.Adapters, ", "))
}

func (e ExampleResult) label() string {
	if e.ID != "" {
		return fmt.Sprintf("#%d %s", e.Index+1, e.ID)
	}
	return fmt.Sprintf("#%d", e.Index+1)
}

// mdCell makes text safe for one Markdown table cell.
func mdCell(s string) string {
	s = mdEscaper.Replace(s)
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\r", "")
	s = strings.ReplaceAll(strings.TrimSpace(s), "\n", "<br>")
	if s == "" {
		return "*(empty)*"
	}
	return s
}

// mdEscaper keeps model output from being read as HTML by Markdown renderers.
var mdEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// mdQuote renders text as a Markdown block quote.
func mdQuote(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(mdEscaper.Replace(s), "\n"), "\n") {
		b.WriteString("> " + line + "\n")
	}
	return b.String()
}

// codeSpans turns the Markdown `code` spans of a summary line into HTML, escaping
// the rest.
func codeSpans(s string) template.HTML {
	parts := strings.Split(s, "`")
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 1 && i < len(parts)-1 {
			b.WriteString("<code>" + template.HTMLEscapeString(p) + "</code>")
		} else {
			b.WriteString(template.HTMLEscapeString(p))
		}
	}
	return template.HTML(b.String())
}

// HTML renders the report as one self-contained HTML page.
func (r *Report) HTML() ([]byte, error) {
	gains, regressions, same := r.sections()
	type section struct {
		Title    string
		ID       string
		Examples []ExampleResult
	}
	var secs []section
	if len(r.Systems) > 1 {
		secs = []section{
			{fmt.Sprintf("Largest gains (%s vs %s, token F1)", r.Systems[1].Name, r.Systems[0].Name), "gains", gains},
			{"Largest regressions", "regressions", regressions},
			{"Unchanged", "unchanged", same},
		}
	} else {
		secs = []section{{"Examples", "examples", same}}
	}
	var charts []template.HTML
	if r.Training != nil {
		for _, c := range r.Training.Charts() {
			c.Width, c.Height = 520, 300
			// plot escapes every text it writes, so its SVG is safe to inline.
			charts = append(charts, template.HTML(c.SVG()))
		}
	}
	var cols []string
	for _, c := range metricColumns {
		cols = append(cols, c.name)
	}
	data := map[string]any{
		"R": r, "Summary": codeSpans(r.summaryLine()), "Columns": cols, "Rows": r.metricRows(),
		"Sections": secs, "Charts": charts, "Shown": ReportExamplesShown,
	}
	if r.Training != nil {
		data["TrainingSummary"] = codeSpans(r.trainingSummary())
	}
	var b bytes.Buffer
	if err := reportTemplate.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("write report: html: %w", err)
	}
	return b.Bytes(), nil
}

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":   func(v float64) string { return fmt.Sprintf("%.1f", 100*v) },
	"delta": func(v float64) string { return fmt.Sprintf("%+.1f", v) },
	"join":  strings.Join,
	"sys":   func(r *Report, i int) SystemResult { return r.Systems[i] },
	"tps":   func(v float64) string { return fmt.Sprintf("%.0f", v) },
	"label": func(e ExampleResult) string { return e.label() },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ecotune evaluation report</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }
th { background: #eef3f8; text-align: left; }
table.metrics td { text-align: right; font-variant-numeric: tabular-nums; }
table.metrics td.name { text-align: left; }
.better { color: #1a7f37; } .worse { color: #cf222e; }
.delta { font-size: 0.85em; margin-left: 0.3em; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure.chart { margin: 0; }
code { background: #f4f4f4; padding: 0 3px; border-radius: 3px; }
.example { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; margin: 1em 0; }
.example h3 { margin: 0.2em 0 0.5em; font-size: 1.05em; }
.text { white-space: pre-wrap; font-family: monospace; font-size: 0.92em; margin: 0.15em 0 0.6em; }
td.text { margin: 0; }
table.answers { width: 100%; table-layout: fixed; }
.muted { color: #777; font-size: 0.9em; }
</style>
</head>
<body>
<h1>Evaluation report</h1>
<p>{{.Summary}}</p>

<h2 id="metrics-heading">Metrics</h2>
<p class="muted">Percentages except loss (mean NLL of the reference tokens, nats) and perplexity; changes are against the base model.</p>
<table class="metrics" id="metrics">
<thead><tr><th>system</th>{{range .Columns}}<th>{{.}}</th>{{end}}<th>tokens/s</th></tr></thead>
<tbody>
{{- range $i, $row := .Rows}}
<tr class="system"><td class="name">{{(sys $.R $i).Name}}{{range (sys $.R $i).Adapters}}<br><span class="muted">{{.}}</span>{{end}}</td>
{{- range $row}}<td>{{.Value}}{{if .Delta}}<span class="delta{{if .Better}} better{{end}}{{if .Worse}} worse{{end}}">{{.Delta}}</span>{{end}}</td>{{end}}<td>{{tps (sys $.R $i).TokensPerSec}}</td></tr>
{{- end}}
</tbody>
</table>

{{- if .Charts}}
<h2 id="training">Training</h2>
<p>{{.TrainingSummary}}</p>
<div class="charts">
{{- range .Charts}}
<figure class="chart">{{.}}</figure>
{{- end}}
</div>
{{- end}}

{{- range .Sections}}{{if .Examples}}
<h2 id="{{.ID}}">{{.Title}}</h2>
{{- range .Examples}}
<div class="example">
<h3>{{label .}}{{if gt (len $.R.Systems) 1}} <span class="delta {{if gt .Delta 0.0}}better{{else if lt .Delta 0.0}}worse{{end}}">F1 {{delta .Delta}}</span>{{end}}</h3>
<div><strong>Prompt</strong><div class="text">{{.Prompt}}</div></div>
<div><strong>Reference</strong><div class="text">{{join .References "\n— or —\n"}}</div></div>
<table class="answers"><thead><tr>{{range $i, $o := .Outputs}}<th>{{(sys $.R $i).Name}} <span class="muted">F1 {{pct $o.Scores.F1}} · ROUGE-L {{pct $o.Scores.RougeL.FMeasure}}</span></th>{{end}}</tr></thead>
<tbody><tr>{{range .Outputs}}<td class="text">{{.Text}}</td>{{end}}</tr></tbody></table>
</div>
{{- end}}
{{end}}{{end}}
<p class="muted">At most {{.Shown}} examples per section; report.json holds every example with all scores.</p>
</body>
</html>
`))
