package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ecotune/ecotune/plot"
)

// LogRecord is one line of the metrics.jsonl a training run writes: a
// training step (Kind "train") or an evaluation on held-out data ("eval").
// The fields are the trainer's; eval reads the file format, not the package.
type LogRecord struct {
	Kind         string  `json:"kind"`
	Step         int     `json:"step"`
	Loss         float64 `json:"loss"`
	LR           float64 `json:"lr,omitempty"`
	GradNorm     float64 `json:"grad_norm,omitempty"`
	Tokens       int     `json:"tokens,omitempty"`
	TokensPerSec float64 `json:"tokens_per_sec,omitempty"`
	ElapsedSec   float64 `json:"elapsed_s"`
}

// TrainingLog is a training run's metrics, split by kind, each in file order.
type TrainingLog struct {
	// Path is the file read.
	Path string `json:"path"`
	// Train holds the training-step records.
	Train []LogRecord `json:"train"`
	// Eval holds the validation records.
	Eval []LogRecord `json:"eval"`
}

// ReadTrainingLog reads a metrics.jsonl file. Records of unknown kinds are
// skipped, so newer trainers can add kinds; a malformed line is an error
// naming it.
func ReadTrainingLog(path string) (*TrainingLog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read training log: %w", err)
	}
	defer f.Close()
	log := &TrainingLog{Path: path}
	r := bufio.NewReader(f)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read training log: %s:%d: %w", path, line, err)
		}
		if t := bytes.TrimSpace(b); len(t) > 0 {
			var rec LogRecord
			if jerr := json.Unmarshal(t, &rec); jerr != nil {
				return nil, &LineError{File: path, Line: line, Err: fmt.Errorf("%w: not a metrics record (was it written by ecotune train?): %v", ErrBadRecord, jerr)}
			}
			switch rec.Kind {
			case "train":
				log.Train = append(log.Train, rec)
			case "eval":
				log.Eval = append(log.Eval, rec)
			}
		}
		if err != nil {
			return log, nil
		}
	}
}

// Charts returns the run's curves: training and validation loss against the
// step, then the learning rate and the throughput when the log has them.
func (l *TrainingLog) Charts() []plot.LineChart {
	col := func(recs []LogRecord, y func(LogRecord) float64) ([]float64, []float64) {
		xs, ys := make([]float64, len(recs)), make([]float64, len(recs))
		for i, r := range recs {
			xs[i], ys[i] = float64(r.Step), y(r)
		}
		return xs, ys
	}
	loss := func(r LogRecord) float64 { return r.Loss }
	tx, ty := col(l.Train, loss)
	vx, vy := col(l.Eval, loss)
	lossChart := plot.LineChart{Title: "Loss", XLabel: "step", YLabel: "loss (nats/token)",
		Series: []plot.Series{{Name: "train", X: tx, Y: ty}}}
	if len(l.Eval) > 0 {
		lossChart.Series = append(lossChart.Series, plot.Series{Name: "validation", X: vx, Y: vy, Dashed: true})
	}
	charts := []plot.LineChart{lossChart}
	has := func(f func(LogRecord) float64) bool {
		for _, r := range l.Train {
			if f(r) != 0 {
				return true
			}
		}
		return false
	}
	if lr := func(r LogRecord) float64 { return r.LR }; has(lr) {
		x, y := col(l.Train, lr)
		charts = append(charts, plot.LineChart{Title: "Learning rate", XLabel: "step", YLabel: "learning rate",
			Series: []plot.Series{{Name: "lr", X: x, Y: y}}})
	}
	if tps := func(r LogRecord) float64 { return r.TokensPerSec }; has(tps) {
		x, y := col(l.Train, tps)
		charts = append(charts, plot.LineChart{Title: "Throughput", XLabel: "step", YLabel: "tokens/s",
			Series: []plot.Series{{Name: "tokens/s", X: x, Y: y}}})
	}
	return charts
}

// WriteLossSVG reads the metrics.jsonl at metricsPath and writes its loss
// chart (training and validation loss against the step) to svgPath.
func WriteLossSVG(metricsPath, svgPath string) error {
	log, err := ReadTrainingLog(metricsPath)
	if err != nil {
		return err
	}
	chart := log.Charts()[0]
	if err := os.WriteFile(svgPath, chart.SVG(), 0o644); err != nil {
		return fmt.Errorf("write loss chart: %w", err)
	}
	return nil
}
