package jobs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// fileError is a training or validation file that prepare could not use.
type fileError struct{ msg string }

func (e *fileError) Error() string { return e.msg }

// tail keeps the last lines a child wrote to stderr, for the job's error message.
type tail struct {
	mu    sync.Mutex
	lines []string
	part  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, p...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimSpace(string(t.part[:i])); line != "" {
			t.lines = append(t.lines, line)
			if len(t.lines) > 20 {
				t.lines = t.lines[1:]
			}
		}
		t.part = t.part[i+1:]
	}
	return len(p), nil
}

// last returns the child's last line of output, where ecotune puts its one-line error.
func (t *tail) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := strings.TrimSpace(string(t.part)); s != "" {
		return s
	}
	if len(t.lines) == 0 {
		return ""
	}
	return t.lines[len(t.lines)-1]
}

// runStep runs one ecotune command for a job, turning a failure into the child's own
// one-line error.
func (m *Manager) runStep(ctx context.Context, args []string) error {
	var t tail
	if err := m.opts.Runner.Run(ctx, args, &t); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if msg := strings.TrimPrefix(t.last(), "ecotune: "); msg != "" {
			return fmt.Errorf("%s", msg)
		}
		return fmt.Errorf("ecotune %s: %w", args[0], err)
	}
	return nil
}

// prepare turns the job's files into training examples with the base's chat template,
// exactly as `ecotune prepare` does for a user.
func (m *Manager) prepare(r row) error {
	m.event(r.ID, Event{Message: "Validating training file: " + r.TrainingFile})
	for _, part := range []struct{ fileID, dir string }{{r.TrainingFile, "data"}, {r.vfile, "val"}} {
		if part.fileID == "" {
			continue
		}
		f, err := m.db.file(part.fileID)
		if err != nil {
			return &fileError{fmt.Sprintf("file %s: %v", part.fileID, err)}
		}
		out := filepath.Join(m.jobDir(r.ID), part.dir)
		if err := os.RemoveAll(out); err != nil {
			return err
		}
		if err := m.runStep(r.ctx, m.prepareArgs(f.path, out, r.Seed)); err != nil {
			if r.ctx.Err() != nil {
				return err
			}
			return &fileError{fmt.Sprintf("file %s (%s): %v", f.ID, f.Filename, err)}
		}
	}
	return nil
}

// prepareArgs is the prepare command line for a job's file: every example goes to train
// (the validation split, if any, is a file of its own).
func (m *Manager) prepareArgs(file, out string, seed int64) []string {
	tmpl := m.opts.Base.Template
	if tmpl == "" {
		tmpl = "model"
	}
	return []string{"prepare", file, "--out", out, "--model", m.opts.Base.Path, "--template", tmpl,
		"--val", "0", "--test", "0", "--seed", strconv.FormatInt(seed, 10), "--quiet"}
}

// TrainArgs is the train command line a fresh job runs, for a run folder out; a test or a
// user can run the same line to get the same adapter.
func (m *Manager) trainArgs(r row, out string) []string {
	h, e := r.settings.Hyperparameters, r.settings.Ecotune
	args := []string{"train", "-m", m.opts.Base.Path, "--data", filepath.Join(m.jobDir(r.ID), "data"), "--out", out,
		"--seed", strconv.FormatInt(r.Seed, 10), "--quiet"}
	if r.vfile != "" {
		args = append(args, "--val", filepath.Join(m.jobDir(r.ID), "val", "train.jsonl"))
	} else {
		args = append(args, "--val-split", "0")
	}
	if e.Steps > 0 {
		args = append(args, "--steps", strconv.Itoa(e.Steps))
	} else {
		args = append(args, "--epochs", strconv.Itoa(h.NEpochs))
	}
	if h.BatchSize > 0 {
		args = append(args, "--batch", strconv.Itoa(h.BatchSize))
	}
	if e.LR > 0 {
		args = append(args, "--lr", strconv.FormatFloat(e.LR, 'g', -1, 64))
	} else if h.LearningRateMultiplier > 0 {
		args = append(args, "--lr", strconv.FormatFloat(defaultLR*h.LearningRateMultiplier, 'g', -1, 64))
	}
	for _, kv := range []struct {
		flag string
		v    string
	}{
		{"--lora.r", itoaIf(e.Rank)}, {"--lora.alpha", ftoaIf(e.Alpha)}, {"--lora.targets", string(e.Targets)}, {"--dtype", e.Dtype},
		{"--seq-len", itoaIf(e.SeqLen)}, {"--save-every", itoaIf(e.SaveEvery)}, {"--eval-every", itoaIf(e.EvalEvery)},
		{"--checkpoint-keep", e.CheckpointKeep},
	} {
		if kv.v != "" {
			args = append(args, kv.flag, kv.v)
		}
	}
	if e.GradientCheckpointing {
		args = append(args, "--gradient-checkpointing")
	}
	if m.opts.Threads > 0 {
		args = append(args, "--threads", strconv.Itoa(m.opts.Threads))
	}
	return args
}

// defaultLR is `ecotune train --lr`'s default, which learning_rate_multiplier scales.
const defaultLR = 2e-4

func itoaIf(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func ftoaIf(f float64) string {
	if f == 0 {
		return ""
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// train runs (or resumes) the job's training, turning its metrics into events as they come.
func (m *Manager) train(r row) error {
	out := m.runDir(r.ID)
	args := m.trainArgs(r, out)
	if step := latestCheckpoint(out); step > 0 {
		args = []string{"train", "--resume", out, "--quiet"}
		if m.opts.Threads > 0 {
			args = append(args, "--threads", strconv.Itoa(m.opts.Threads))
		}
		m.event(r.ID, Event{Message: fmt.Sprintf("Resuming from the checkpoint at step %d.", step)})
	} else if err := os.RemoveAll(out); err != nil {
		return err
	}
	total := m.totalSteps(r)
	s := &syncer{m: m, job: r.ID, run: out, total: total, seen: map[string]float64{}}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.sync()
			}
		}
	}()
	err := m.runStep(r.ctx, args)
	close(done)
	s.sync()
	return err
}

// totalSteps is the number of optimizer steps the job will take, as train computes it
// for --epochs: ⌈epochs · examples / batch⌉.
func (m *Manager) totalSteps(r row) int {
	if r.settings.Ecotune.Steps > 0 {
		return r.settings.Ecotune.Steps
	}
	raw, err := os.ReadFile(filepath.Join(m.jobDir(r.ID), "data", "manifest.json"))
	if err != nil {
		return 0
	}
	var man struct {
		Counts struct{ Train int } `json:"counts"`
	}
	if json.Unmarshal(raw, &man) != nil {
		return 0
	}
	batch := max(r.settings.Hyperparameters.BatchSize, 1)
	return int(math.Ceil(float64(r.settings.Hyperparameters.NEpochs) * float64(man.Counts.Train) / float64(batch)))
}

// latestCheckpoint returns the step of the newest complete checkpoint in a run folder
// (train writes each to a temporary name and renames it to checkpoint-<step>), or 0.
func latestCheckpoint(run string) int {
	steps := checkpointSteps(run)
	if len(steps) == 0 {
		return 0
	}
	return steps[len(steps)-1]
}

func checkpointSteps(run string) []int {
	entries, _ := os.ReadDir(run)
	var steps []int
	for _, e := range entries {
		if rest, ok := strings.CutPrefix(e.Name(), "checkpoint-"); ok && e.IsDir() {
			if n, err := strconv.Atoi(rest); err == nil && n > 0 && strconv.Itoa(n) == rest {
				steps = append(steps, n)
			}
		}
	}
	sort.Ints(steps)
	return steps
}

// record is one line of train's metrics.jsonl.
type record struct {
	Kind         string  `json:"kind"`
	Step         int     `json:"step"`
	Loss         float64 `json:"loss"`
	LR           float64 `json:"lr"`
	Tokens       int64   `json:"tokens"`
	TokensPerSec float64 `json:"tokens_per_sec"`
	ElapsedSec   float64 `json:"elapsed_s"`
}

func readMetrics(path string) []record {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r record
		if json.Unmarshal(sc.Bytes(), &r) == nil { // a line being written is skipped until complete
			out = append(out, r)
		}
	}
	return out
}

// trainedTokens is the tokens the run processed, from its last training record.
func trainedTokens(path string) int64 {
	var n int64
	for _, r := range readMetrics(path) {
		if r.Kind == "train" {
			n = r.Tokens
		}
	}
	return n
}

// syncer mirrors a run's metrics and checkpoints into the job's events and checkpoints.
// Event IDs are derived from the step, so a step redone after a restart replaces its
// event instead of adding one.
type syncer struct {
	m     *Manager
	job   string
	run   string
	total int
	seen  map[string]float64
}

func (s *syncer) sync() {
	changed := false
	trainLoss := map[int]float64{}
	for _, r := range readMetrics(filepath.Join(s.run, "metrics.jsonl")) {
		r := r
		var id string
		var ev Event
		switch r.Kind {
		case "train":
			trainLoss[r.Step] = r.Loss
			id = fmt.Sprintf("ftevent-%s-step-%d", strings.TrimPrefix(s.job, "ftjob-"), r.Step)
			data := map[string]any{"step": r.Step, "train_loss": r.Loss, "learning_rate": r.LR, "tokens_per_sec": r.TokensPerSec,
				"elapsed_seconds": r.ElapsedSec}
			msg := fmt.Sprintf("Step %d: training loss=%.4f", r.Step, r.Loss)
			if s.total > 0 {
				data["total_steps"] = s.total
				msg = fmt.Sprintf("Step %d/%d: training loss=%.4f", r.Step, s.total, r.Loss)
				if r.Step > 0 {
					data["eta_seconds"] = r.ElapsedSec / float64(r.Step) * float64(max(s.total-r.Step, 0))
				}
			}
			ev = Event{ID: id, Type: "metrics", Message: msg, Data: data}
		case "eval":
			id = fmt.Sprintf("ftevent-%s-eval-%d", strings.TrimPrefix(s.job, "ftjob-"), r.Step)
			ev = Event{ID: id, Type: "metrics", Message: fmt.Sprintf("Step %d: validation loss=%.4f", r.Step, r.Loss),
				Data: map[string]any{"step": r.Step, "valid_loss": r.Loss}}
		default:
			continue
		}
		if v, ok := s.seen[id]; ok && v == r.Loss {
			continue
		}
		s.seen[id] = r.Loss
		if err := s.m.db.addEvent(s.job, ev); err != nil {
			s.m.log.Error("jobs: recording metrics", "job", s.job, "err", err)
			return
		}
		changed = true
	}
	for _, step := range checkpointSteps(s.run) {
		id := fmt.Sprintf("ckpt-%d", step)
		if _, ok := s.seen[id]; ok {
			continue
		}
		s.seen[id] = 0
		metrics := map[string]any{"step": step}
		if loss, ok := trainLoss[step]; ok {
			metrics["train_loss"] = loss
		}
		if err := s.m.db.addCheckpoint(s.job, step, filepath.Join(s.run, "checkpoint-"+strconv.Itoa(step)), metrics); err != nil {
			s.m.log.Error("jobs: recording a checkpoint", "job", s.job, "err", err)
		}
		changed = true
	}
	if changed {
		s.m.watch.notify(s.job)
	}
}
