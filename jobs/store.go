package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// schema is the state a server keeps: uploaded files, jobs, their events and checkpoints.
const schema = `
CREATE TABLE IF NOT EXISTS files (
	id TEXT PRIMARY KEY,
	filename TEXT NOT NULL,
	purpose TEXT NOT NULL,
	bytes INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
	id TEXT PRIMARY KEY,
	seq INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	model TEXT NOT NULL,
	training_file TEXT NOT NULL,
	validation_file TEXT NOT NULL DEFAULT '',
	suffix TEXT NOT NULL DEFAULT '',
	seed INTEGER NOT NULL,
	settings TEXT NOT NULL,
	status TEXT NOT NULL,
	fine_tuned_model TEXT NOT NULL DEFAULT '',
	trained_tokens INTEGER NOT NULL DEFAULT 0,
	error TEXT NOT NULL DEFAULT '',
	finished_at INTEGER NOT NULL DEFAULT 0,
	result_files TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS events (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	id TEXT NOT NULL UNIQUE,
	job_id TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	level TEXT NOT NULL,
	message TEXT NOT NULL,
	type TEXT NOT NULL,
	data TEXT NOT NULL DEFAULT 'null'
);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
	id TEXT PRIMARY KEY,
	job_id TEXT NOT NULL,
	step INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	path TEXT NOT NULL,
	metrics TEXT NOT NULL,
	UNIQUE (job_id, step)
);
`

// store is the SQLite database under the data directory. Every change is one
// transaction, so a server killed at any moment leaves a consistent state.
type store struct {
	db *sql.DB
}

func openStore(path string) (*store, error) {
	// WAL lets the HTTP handlers read while a job writes; busy_timeout makes concurrent
	// writers wait instead of failing.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)")
	if err != nil {
		return nil, fmt.Errorf("jobs: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer; SQLite serializes them anyway
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("jobs: %s: %w", path, err)
	}
	return &store{db: db}, nil
}

func (s *store) Close() error { return s.db.Close() }

// File is an uploaded file, in OpenAI's shape.
type File struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	path      string
}

func (s *store) addFile(f File) error {
	_, err := s.db.Exec(`INSERT INTO files (id, filename, purpose, bytes, created_at, path) VALUES (?, ?, ?, ?, ?, ?)`,
		f.ID, f.Filename, f.Purpose, f.Bytes, f.CreatedAt, f.path)
	return err
}

var errNotFound = errors.New("not found")

func (s *store) file(id string) (File, error) {
	f := File{Object: "file"}
	err := s.db.QueryRow(`SELECT id, filename, purpose, bytes, created_at, path FROM files WHERE id = ?`, id).
		Scan(&f.ID, &f.Filename, &f.Purpose, &f.Bytes, &f.CreatedAt, &f.path)
	if errors.Is(err, sql.ErrNoRows) {
		return File{}, errNotFound
	}
	return f, err
}

func (s *store) files() ([]File, error) {
	rows, err := s.db.Query(`SELECT id, filename, purpose, bytes, created_at, path FROM files ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []File{}
	for rows.Next() {
		f := File{Object: "file"}
		if err := rows.Scan(&f.ID, &f.Filename, &f.Purpose, &f.Bytes, &f.CreatedAt, &f.path); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

func (s *store) deleteFile(id string) error {
	_, err := s.db.Exec(`DELETE FROM files WHERE id = ?`, id)
	return err
}

// fileInUse reports whether a job that has not ended reads the file.
func (s *store) fileInUse(id string) (bool, error) {
	var n int
	err := s.db.QueryRow(`SELECT COUNT(*) FROM jobs WHERE (training_file = ? OR validation_file = ?) AND status IN (?, ?, ?)`,
		id, id, StatusValidating, StatusQueued, StatusRunning).Scan(&n)
	return n > 0, err
}

// row is a job as stored.
type row struct {
	Job
	seq      int64
	settings Settings
	ctx      context.Context // while a worker runs the job: ended by cancel or shutdown
}

const jobColumns = `id, seq, created_at, model, training_file, validation_file, suffix, seed, settings, status,
	fine_tuned_model, trained_tokens, error, finished_at, result_files`

func scanJob(sc interface{ Scan(...any) error }) (row, error) {
	var r row
	var settings, errText, results string
	var suffix string
	err := sc.Scan(&r.ID, &r.seq, &r.CreatedAt, &r.Model, &r.TrainingFile, &r.vfile, &suffix, &r.Seed, &settings, &r.Status,
		&r.ftModel, &r.TrainedTokens, &errText, &r.finished, &results)
	if err != nil {
		return row{}, err
	}
	r.Object = "fine_tuning.job"
	if suffix != "" {
		r.Suffix = &suffix
	}
	if r.vfile != "" {
		r.ValidationFile = &r.vfile
	}
	if r.ftModel != "" {
		r.FineTunedModel = &r.ftModel
	}
	if r.finished > 0 {
		r.FinishedAt = &r.finished
	}
	if errText != "" {
		r.Error = &JobError{}
		if err := json.Unmarshal([]byte(errText), r.Error); err != nil {
			return row{}, err
		}
	}
	if err := json.Unmarshal([]byte(settings), &r.settings); err != nil {
		return row{}, err
	}
	r.Hyperparameters = r.settings.Hyperparameters
	r.Ecotune = r.settings.Ecotune
	if err := json.Unmarshal([]byte(results), &r.ResultFiles); err != nil {
		return row{}, err
	}
	return r, nil
}

func (s *store) addJob(r row) error {
	settings, err := json.Marshal(r.settings)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(`INSERT INTO jobs (id, seq, created_at, model, training_file, validation_file, suffix, seed, settings, status)
		VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.CreatedAt, r.Model, r.TrainingFile, r.vfile, deref(r.Suffix), r.Seed, string(settings), r.Status)
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (s *store) job(id string) (row, error) {
	r, err := scanJob(s.db.QueryRow(`SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return row{}, errNotFound
	}
	return r, err
}

// jobsPage lists jobs newest first, after the job with ID after (if any).
func (s *store) jobsPage(after string, limit int) ([]row, bool, error) {
	q := `SELECT ` + jobColumns + ` FROM jobs`
	args := []any{}
	if after != "" {
		q += ` WHERE seq < (SELECT seq FROM jobs WHERE id = ?)`
		args = append(args, after)
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, limit+1)
	rows, err := s.db.Query(q, args...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		r, err := scanJob(rows)
		if err != nil {
			return nil, false, err
		}
		out = append(out, r)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, rows.Err()
}

// jobsWithStatus lists jobs in any of the statuses, oldest first.
func (s *store) jobsWithStatus(statuses ...string) ([]row, error) {
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE status IN (?` + repeat(",?", len(statuses)-1) + `) ORDER BY seq`
	args := make([]any, len(statuses))
	for i, st := range statuses {
		args[i] = st
	}
	rows, err := s.db.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		r, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

// setStatus moves a job to status and records the event, in one transaction; it fails if
// the job is not in one of from (so a cancel and a finish cannot both win).
func (s *store) setStatus(ctx context.Context, id, status string, from []string, update func(tx *sql.Tx) error, ev *Event) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var cur string
	if err := tx.QueryRow(`SELECT status FROM jobs WHERE id = ?`, id).Scan(&cur); err != nil {
		return err
	}
	ok := len(from) == 0
	for _, f := range from {
		ok = ok || f == cur
	}
	if !ok {
		return fmt.Errorf("%w: job %s is %s", errWrongStatus, id, cur)
	}
	if _, err := tx.Exec(`UPDATE jobs SET status = ? WHERE id = ?`, status, id); err != nil {
		return err
	}
	if update != nil {
		if err := update(tx); err != nil {
			return err
		}
	}
	if ev != nil {
		if err := insertEvent(tx, id, *ev); err != nil {
			return err
		}
	}
	return tx.Commit()
}

var errWrongStatus = errors.New("wrong status")

// Event is one entry of a job's log, in OpenAI's shape; metrics events carry a step's numbers.
type Event struct {
	Object    string         `json:"object"`
	ID        string         `json:"id"`
	CreatedAt int64          `json:"created_at"`
	Level     string         `json:"level"`
	Message   string         `json:"message"`
	Type      string         `json:"type"`
	Data      map[string]any `json:"data"`
	seq       int64
}

type execer interface {
	Exec(query string, args ...any) (sql.Result, error)
}

// insertEvent records an event; an event whose ID exists replaces it, so the metrics of
// a step redone after a restart appear once, with the redone values.
func insertEvent(x execer, jobID string, ev Event) error {
	if ev.ID == "" {
		ev.ID = newID("ftevent-")
	}
	if ev.CreatedAt == 0 {
		ev.CreatedAt = time.Now().Unix()
	}
	if ev.Level == "" {
		ev.Level = "info"
	}
	if ev.Type == "" {
		ev.Type = "message"
	}
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return err
	}
	_, err = x.Exec(`INSERT INTO events (id, job_id, created_at, level, message, type, data) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at, message = excluded.message, data = excluded.data`,
		ev.ID, jobID, ev.CreatedAt, ev.Level, ev.Message, ev.Type, string(data))
	return err
}

func (s *store) addEvent(jobID string, ev Event) error { return insertEvent(s.db, jobID, ev) }

// events lists a job's events after the one with sequence after, oldest first.
func (s *store) events(jobID string, after int64, limit int) ([]Event, error) {
	rows, err := s.db.Query(`SELECT seq, id, created_at, level, message, type, data FROM events
		WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?`, jobID, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		ev := Event{Object: "fine_tuning.job.event"}
		var data string
		if err := rows.Scan(&ev.seq, &ev.ID, &ev.CreatedAt, &ev.Level, &ev.Message, &ev.Type, &data); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(data), &ev.Data); err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

// Checkpoint is a saved training state of a job, in OpenAI's shape.
type Checkpoint struct {
	Object                   string         `json:"object"`
	ID                       string         `json:"id"`
	CreatedAt                int64          `json:"created_at"`
	FineTunedModelCheckpoint string         `json:"fine_tuned_model_checkpoint"`
	StepNumber               int            `json:"step_number"`
	Metrics                  map[string]any `json:"metrics"`
	FineTuningJobID          string         `json:"fine_tuning_job_id"`
}

func (s *store) addCheckpoint(jobID string, step int, path string, metrics map[string]any) error {
	m, err := json.Marshal(metrics)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(`INSERT INTO checkpoints (id, job_id, step, created_at, path, metrics) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (job_id, step) DO UPDATE SET path = excluded.path, metrics = excluded.metrics`,
		fmt.Sprintf("ftckpt-%s-%d", jobID, step), jobID, step, time.Now().Unix(), path, string(m))
	return err
}

func (s *store) checkpoints(jobID string) ([]Checkpoint, error) {
	rows, err := s.db.Query(`SELECT id, created_at, step, path, metrics FROM checkpoints WHERE job_id = ? ORDER BY step DESC`, jobID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Checkpoint{}
	for rows.Next() {
		c := Checkpoint{Object: "fine_tuning.job.checkpoint", FineTuningJobID: jobID}
		var metrics string
		if err := rows.Scan(&c.ID, &c.CreatedAt, &c.StepNumber, &c.FineTunedModelCheckpoint, &metrics); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(metrics), &c.Metrics); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
