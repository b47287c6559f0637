// Package jobs is ecotune's fine-tuning service: OpenAI's files and fine-tuning jobs API
// over `ecotune prepare` and `ecotune train`, with its state in an SQLite database, so a
// job survives a server restart and resumes from its newest checkpoint. Finished adapters
// are handed to whatever serves them through AdapterSink.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// AdapterSink receives each finished adapter, under the job's fine_tuned_model name.
type AdapterSink interface {
	AddAdapter(name, path string) error
}

// Base is the model jobs fine-tune: its name in the APIs, its GGUF file, and the prepare
// template its examples are written with ("" = "model", its own chat template).
type Base struct {
	Name, Path, Template string
}

// Options configures Open; zero fields take the defaults noted.
type Options struct {
	DataDir   string // the database, uploaded files and job folders live here (required)
	RunsDir   string // each job's run folder (checkpoints, metrics, adapter) is RunsDir/<job id>; "" = inside its job folder
	Base      Base   // the model jobs may name (required)
	Runner    Runner // runs ecotune's commands (required)
	Sink      AdapterSink
	MaxJobs   int   // jobs training at once; 0 = 1
	MaxUpload int64 // largest upload in bytes; 0 = 256 MiB
	Threads   int   // training threads; 0 = train's default (all)
	Logger    *slog.Logger
}

// PreviewExample is one example as the model sees it: its text in segments, each marked
// with whether training learns from it.
type PreviewExample struct {
	Segments []PreviewSegment `json:"segments"`
}

// PreviewSegment is a run of text that is trained on or not.
type PreviewSegment struct {
	Text    string `json:"text"`
	Trained bool   `json:"trained"`
}

// Manager runs jobs one after another (or MaxJobs at once) while the server serves.
type Manager struct {
	opts  Options
	db    *store
	log   *slog.Logger
	ctx   context.Context
	stop  context.CancelFunc
	wake  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	live  map[string]context.CancelFunc // running jobs, to cancel them
	watch *notifier
}

// Open opens (or creates) the state under opts.DataDir, hands the adapters of finished
// jobs to the sink, and starts the workers; jobs that were running when the server
// stopped go first, resuming from their newest checkpoint.
func Open(opts Options) (*Manager, error) {
	if opts.DataDir == "" || opts.Base.Path == "" || opts.Runner == nil {
		return nil, errors.New("jobs: Options needs DataDir, Base and Runner")
	}
	if opts.MaxJobs == 0 {
		opts.MaxJobs = 1
	}
	if opts.MaxUpload == 0 {
		opts.MaxUpload = 256 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{filepath.Join(opts.DataDir, "files"), filepath.Join(opts.DataDir, "jobs"), opts.RunsDir} {
		if err := os.MkdirAll(d, 0o755); d != "" && err != nil {
			return nil, fmt.Errorf("jobs: %w", err)
		}
	}
	db, err := openStore(filepath.Join(opts.DataDir, "jobs.db"))
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	m := &Manager{opts: opts, db: db, log: opts.Logger, ctx: ctx, stop: stop, wake: make(chan struct{}, 1),
		live: map[string]context.CancelFunc{}, watch: newNotifier()}
	done, err := db.jobsWithStatus(StatusSucceeded)
	if err != nil {
		db.Close()
		return nil, err
	}
	for _, r := range done {
		if opts.Sink != nil && r.FineTunedModel != nil {
			if err := opts.Sink.AddAdapter(*r.FineTunedModel, m.adapterPath(r.ID)); err != nil {
				m.log.Warn("jobs: the adapter of a finished job could not be served", "job", r.ID, "err", err)
			}
		}
	}
	for range opts.MaxJobs {
		m.wg.Add(1)
		go m.worker()
	}
	m.poke()
	return m, nil
}

// Close stops the workers: running jobs are interrupted (train saves a checkpoint) and
// stay "running" in the database, so the next Open resumes them.
func (m *Manager) Close() error {
	m.stop()
	m.wg.Wait()
	return m.db.Close()
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Manager) jobDir(id string) string { return filepath.Join(m.opts.DataDir, "jobs", id) }
func (m *Manager) runDir(id string) string {
	if m.opts.RunsDir != "" {
		return filepath.Join(m.opts.RunsDir, id)
	}
	return filepath.Join(m.jobDir(id), "run")
}
func (m *Manager) adapterPath(id string) string { return filepath.Join(m.runDir(id), "adapter.gguf") }

// worker takes the oldest job that is waiting (validating, queued, or running when the
// server stopped) and runs it.
func (m *Manager) worker() {
	defer m.wg.Done()
	for {
		r, ok := m.claim()
		if ok {
			m.run(r)
			continue
		}
		select {
		case <-m.ctx.Done():
			return
		case <-m.wake:
		}
	}
}

// claim picks the next job no worker runs.
func (m *Manager) claim() (row, bool) {
	if m.ctx.Err() != nil {
		return row{}, false
	}
	rows, err := m.db.jobsWithStatus(StatusRunning, StatusValidating, StatusQueued)
	if err != nil {
		m.log.Error("jobs: listing waiting jobs", "err", err)
		return row{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range rows {
		if _, busy := m.live[r.ID]; !busy {
			ctx, cancel := context.WithCancel(m.ctx)
			m.live[r.ID] = cancel
			r.ctx = ctx
			return r, true
		}
	}
	return row{}, false
}

// run takes one job through validation, training and registration.
func (m *Manager) run(r row) {
	defer func() {
		m.mu.Lock()
		if cancel := m.live[r.ID]; cancel != nil {
			cancel()
		}
		delete(m.live, r.ID)
		m.mu.Unlock()
		m.watch.notify(r.ID)
		m.poke()
	}()
	err := m.execute(r)
	switch {
	case err == nil:
	case m.ctx.Err() != nil:
		// The server is stopping: the job stays as it is and resumes at the next start.
		m.event(r.ID, Event{Message: "The server stopped; the job resumes from its newest checkpoint when it starts again."})
	case r.ctx.Err() != nil:
		m.finish(r.ID, StatusCancelled, nil, Event{Message: "Fine-tuning job cancelled."})
	default:
		m.finish(r.ID, StatusFailed, &JobError{Code: failureCode(err), Message: err.Error()}, Event{Level: "error", Message: "Fine-tuning job failed: " + err.Error()})
	}
}

// failureCode tells a bad file from a failed run, as OpenAI's error codes do.
func failureCode(err error) string {
	var fe *fileError
	if errors.As(err, &fe) {
		return "invalid_training_file"
	}
	return "training_failed"
}

// finish records a final status with its event.
func (m *Manager) finish(id, status string, jerr *JobError, ev Event) {
	err := m.db.setStatus(context.Background(), id, status, []string{StatusValidating, StatusQueued, StatusRunning},
		func(tx *sql.Tx) error {
			errText := ""
			if jerr != nil {
				b, _ := jsonMarshal(jerr)
				errText = string(b)
			}
			_, err := tx.Exec(`UPDATE jobs SET error = ?, finished_at = ? WHERE id = ?`, errText, time.Now().Unix(), id)
			return err
		}, &ev)
	if err != nil && !errors.Is(err, errWrongStatus) {
		m.log.Error("jobs: recording the end of a job", "job", id, "err", err)
	}
	m.watch.notify(id)
}

// event records a message event and wakes the job's watchers.
func (m *Manager) event(id string, ev Event) {
	if err := m.db.addEvent(id, ev); err != nil {
		m.log.Error("jobs: recording an event", "job", id, "err", err)
	}
	m.watch.notify(id)
}

// execute runs the steps a job still needs, from the status it is in.
func (m *Manager) execute(r row) error {
	if r.Status == StatusValidating {
		if err := m.prepare(r); err != nil {
			return err
		}
		if err := m.db.setStatus(r.ctx, r.ID, StatusQueued, []string{StatusValidating}, nil,
			&Event{Message: "Files validated; the job is queued."}); err != nil {
			return err
		}
		m.watch.notify(r.ID)
		r.Status = StatusQueued
	}
	if r.Status == StatusQueued {
		if err := m.db.setStatus(r.ctx, r.ID, StatusRunning, []string{StatusQueued}, nil,
			&Event{Message: "Fine-tuning job started."}); err != nil {
			return err
		}
		m.watch.notify(r.ID)
	}
	if err := m.train(r); err != nil {
		return err
	}
	return m.succeed(r)
}

// succeed registers the adapter and records the result.
func (m *Manager) succeed(r row) error {
	name := fineTunedName(m.opts.Base.Name, deref(r.Suffix), r.ID)
	adapter := m.adapterPath(r.ID)
	if _, err := os.Stat(adapter); err != nil {
		return fmt.Errorf("training ended without an adapter: %w", err)
	}
	tokens := trainedTokens(filepath.Join(m.runDir(r.ID), "metrics.jsonl"))
	results := File{ID: "file-" + strings.TrimPrefix(r.ID, "ftjob-") + "-metrics", Object: "file", Filename: "metrics.jsonl",
		Purpose: "fine-tune-results", CreatedAt: time.Now().Unix(), path: filepath.Join(m.runDir(r.ID), "metrics.jsonl")}
	if fi, err := os.Stat(results.path); err == nil {
		results.Bytes = fi.Size()
	}
	if _, err := m.db.file(results.ID); errors.Is(err, errNotFound) {
		if err := m.db.addFile(results); err != nil {
			return err
		}
	}
	if m.opts.Sink != nil {
		if err := m.opts.Sink.AddAdapter(name, adapter); err != nil {
			return fmt.Errorf("serving the adapter as %s: %w", name, err)
		}
	}
	err := m.db.setStatus(context.Background(), r.ID, StatusSucceeded, []string{StatusRunning}, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE jobs SET fine_tuned_model = ?, trained_tokens = ?, finished_at = ?, result_files = ? WHERE id = ?`,
			name, tokens, time.Now().Unix(), `["`+results.ID+`"]`, r.ID)
		return err
	}, &Event{Message: "The job has successfully completed. New fine-tuned model: " + name})
	m.watch.notify(r.ID)
	return err
}

// fineTunedName is the served name of a job's adapter: ft:<base>:<suffix>:<job>.
func fineTunedName(base, suffix, id string) string {
	return "ft:" + base + ":" + suffix + ":" + strings.TrimPrefix(id, "ftjob-")
}
