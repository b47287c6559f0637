package trainer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// Record is one line of metrics.jsonl: a training step, an evaluation, or an
// out-of-memory fallback.
type Record struct {
	Kind         string  `json:"kind"` // "train", "eval" or "oom"
	Step         int     `json:"step"`
	Loss         float64 `json:"loss"`
	LR           float64 `json:"lr,omitempty"`
	GradNorm     float64 `json:"grad_norm,omitempty"`
	Tokens       int     `json:"tokens,omitempty"` // tokens processed so far
	TokensPerSec float64 `json:"tokens_per_sec,omitempty"`
	MicroBatch   int     `json:"micro_batch,omitempty"` // "oom": the new micro-batch size
	GradAccum    int     `json:"grad_accum,omitempty"`  // "oom": the new number of micro-batches per step
	ElapsedSec   float64 `json:"elapsed_s"`
}

// metricsLog appends records to a JSON-lines file.
type metricsLog struct {
	f   *os.File
	enc *json.Encoder
}

func openMetrics(path string) (*metricsLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("trainer: metrics: %w", err)
	}
	return &metricsLog{f: f, enc: json.NewEncoder(f)}, nil
}

func (l *metricsLog) write(r Record) error {
	if l == nil {
		return nil
	}
	if err := l.enc.Encode(r); err != nil {
		return fmt.Errorf("trainer: writing metrics: %w", err)
	}
	return nil
}

func (l *metricsLog) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// trimMetrics drops the records of steps after step from the metrics file at path
// (written by a lifetime that died after its last checkpoint; the resumed run writes
// them again), and a last line cut short by the kill. Earlier records stay byte for
// byte. A missing file is fine.
func trimMetrics(path string, step int) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("trainer: metrics: %w", err)
	}
	var keep []byte
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, line := range lines {
		if len(line) == 0 {
			continue
		}
		if line[len(line)-1] != '\n' {
			break // the unfinished last line of a killed writer
		}
		var r struct {
			Step *int `json:"step"`
		}
		if err := json.Unmarshal(line, &r); err != nil || r.Step == nil {
			return fmt.Errorf("trainer: metrics %s: line %d is not a record (%v); move the file away to resume", path, i+1, err)
		}
		if *r.Step <= step {
			keep = append(keep, line...)
		}
	}
	if bytes.Equal(keep, data) {
		return nil
	}
	if err := writeFileAtomic(path, keep); err != nil {
		return fmt.Errorf("trainer: metrics: %w", err)
	}
	return nil
}
