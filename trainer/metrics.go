package trainer

import (
	"encoding/json"
	"fmt"
	"os"
)

// Record is one line of metrics.jsonl: a training step or an evaluation.
type Record struct {
	Kind         string  `json:"kind"` // "train" or "eval"
	Step         int     `json:"step"`
	Loss         float64 `json:"loss"`
	LR           float64 `json:"lr,omitempty"`
	GradNorm     float64 `json:"grad_norm,omitempty"`
	Tokens       int     `json:"tokens,omitempty"` // tokens processed so far
	TokensPerSec float64 `json:"tokens_per_sec,omitempty"`
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
