package studio

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Record is one line of a run's metrics.jsonl, as trainer.Record writes it: a training
// step, an evaluation ("eval") or an out-of-memory fallback ("oom").
type Record struct {
	Kind         string  `json:"kind"`
	Step         int     `json:"step"`
	Loss         float64 `json:"loss"`
	LR           float64 `json:"lr,omitempty"`
	GradNorm     float64 `json:"grad_norm,omitempty"`
	Tokens       int     `json:"tokens,omitempty"`
	TokensPerSec float64 `json:"tokens_per_sec,omitempty"`
	MicroBatch   int     `json:"micro_batch,omitempty"`
	GradAccum    int     `json:"grad_accum,omitempty"`
	ElapsedSec   float64 `json:"elapsed_s"`
}

// Report is an `ecotune eval` report found in a run folder: the paths (relative to the run,
// for /studio/api/runs/{name}/files/) of its files and the metric table of each system.
type Report struct {
	Dir     string          `json:"dir"` // "" for the run folder itself
	HTML    string          `json:"html,omitempty"`
	JSON    string          `json:"json,omitempty"`
	MD      string          `json:"md,omitempty"`
	Systems json.RawMessage `json:"systems,omitempty"` // report.json's systems, as written
}

// Run summarises one run folder.
type Run struct {
	Name     string    `json:"name"`
	Modified time.Time `json:"modified"`
	// From train_config.json, when there is one.
	Model   string   `json:"model,omitempty"`
	Data    string   `json:"data,omitempty"`
	Method  string   `json:"method,omitempty"`
	Rank    int      `json:"rank,omitempty"`
	Alpha   float64  `json:"alpha,omitempty"`
	Targets []string `json:"targets,omitempty"`
	Steps   int      `json:"steps,omitempty"` // planned optimizer steps (0 when epochs decide)
	// From metrics.jsonl.
	LastStep      int      `json:"last_step"`
	TrainLoss     *float64 `json:"train_loss,omitempty"` // of the last step
	ValidLoss     *float64 `json:"valid_loss,omitempty"` // of the last evaluation
	BestValidLoss *float64 `json:"best_valid_loss,omitempty"`
	TokensPerSec  float64  `json:"tokens_per_sec,omitempty"`
	ElapsedSec    float64  `json:"elapsed_s,omitempty"`
	// Adapter is the trained adapter's (or full model's) file name, "" while none is written.
	Adapter      string   `json:"adapter,omitempty"`
	AdapterBytes int64    `json:"adapter_bytes,omitempty"`
	Reports      []Report `json:"reports"`
	Problem      string   `json:"problem,omitempty"` // what could not be read, if anything
}

// RunDetail is a run with every metrics record and its train_config.json as written.
type RunDetail struct {
	Run
	Records []Record        `json:"records"`
	Config  json.RawMessage `json:"config,omitempty"`
}

// runFiles are the files of a run folder the studio serves; nothing else (checkpoints,
// data) leaves the server through it.
var runFiles = []string{"report.html", "report.json", "report.md", "loss.svg", "metrics.jsonl", "train_config.json"}

// listRuns serves GET /studio/api/runs: every run folder, newest first.
func (h *handler) listRuns(w http.ResponseWriter, r *http.Request) {
	runs := []Run{}
	if h.opts.RunsDir != "" {
		entries, err := os.ReadDir(h.opts.RunsDir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			writeError(w, http.StatusInternalServerError, "reading the runs folder: "+err.Error())
			return
		}
		for _, e := range entries {
			if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if run, ok := readRun(h.opts.RunsDir, e.Name()); ok {
				runs = append(runs, run.Run)
			}
		}
	}
	slices.SortStableFunc(runs, func(a, b Run) int { return b.Modified.Compare(a.Modified) })
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "runs_dir": h.opts.RunsDir, "data": runs})
}

// getRun serves GET /studio/api/runs/{name}: the run with its records.
func (h *handler) getRun(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !validRunName(name) || h.opts.RunsDir == "" {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no run %q", name))
		return
	}
	run, ok := readRun(h.opts.RunsDir, name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no run %q under %s", name, h.opts.RunsDir))
		return
	}
	writeJSON(w, http.StatusOK, run)
}

// runFile serves GET /studio/api/runs/{name}/files/{file...}: a report or log of the run,
// in the run folder or one folder below it.
func (h *handler) runFile(w http.ResponseWriter, r *http.Request) {
	name, file := r.PathValue("name"), r.PathValue("file")
	parts := strings.Split(file, "/")
	if h.opts.RunsDir == "" || !validRunName(name) || len(parts) > 2 || !slices.Contains(runFiles, parts[len(parts)-1]) ||
		(len(parts) == 2 && !validRunName(parts[0])) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("the studio serves no file %q of run %q", file, name))
		return
	}
	root, err := os.OpenRoot(h.opts.RunsDir) // refuses symbolic links that lead out of the folder
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer root.Close()
	f, err := root.Open(path.Join(name, file))
	if err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("run %q has no %s", name, file))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		writeError(w, http.StatusNotFound, fmt.Sprintf("run %q has no %s", name, file))
		return
	}
	if strings.HasSuffix(file, ".jsonl") {
		w.Header().Set("Content-Type", "application/jsonl; charset=utf-8")
	}
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// validRunName accepts one path element that names a visible folder.
func validRunName(name string) bool {
	return name != "" && !strings.HasPrefix(name, ".") && !strings.ContainsAny(name, `/\`) && filepath.IsLocal(name)
}

// readRun reads the run folder dir/name; ok is false when it holds none of a run's files.
func readRun(dir, name string) (RunDetail, bool) {
	folder := filepath.Join(dir, name)
	fi, err := os.Stat(folder)
	if err != nil || !fi.IsDir() {
		return RunDetail{}, false
	}
	d := RunDetail{Run: Run{Name: name, Modified: fi.ModTime().UTC(), Reports: []Report{}}, Records: []Record{}}
	found := false
	var problems []string
	touch := func(p string) bool {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		found = true
		if fi.ModTime().After(d.Modified) {
			d.Modified = fi.ModTime().UTC()
		}
		return true
	}
	if p := filepath.Join(folder, "train_config.json"); touch(p) {
		if err := d.readConfig(p); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if p := filepath.Join(folder, "metrics.jsonl"); touch(p) {
		if err := d.readMetrics(p); err != nil {
			problems = append(problems, err.Error())
		}
	}
	for _, a := range []string{"adapter.gguf", "model.gguf"} {
		if fi, err := os.Stat(filepath.Join(folder, a)); err == nil && !fi.IsDir() {
			found = true
			d.Adapter, d.AdapterBytes = a, fi.Size()
			break
		}
	}
	d.Reports = findReports(folder)
	if len(d.Reports) > 0 {
		found = true
	}
	d.Problem = strings.Join(problems, "; ")
	return d, found
}

// readConfig takes the run's settings from train_config.json (cmd/ecotune's runSettings).
func (d *RunDetail) readConfig(p string) error {
	raw, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	var c struct {
		Model  string `json:"model"`
		Name   string `json:"model_name"`
		Data   string `json:"data"`
		Config struct {
			Method string
			Steps  int
			LoRA   struct {
				Rank    int
				Alpha   float64
				Targets []string
			}
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("train_config.json: %v", err)
	}
	d.Config = raw
	if c.Model != "" {
		c.Model = filepath.Base(c.Model)
	}
	d.Model, d.Data, d.Method, d.Steps = cmp.Or(c.Name, c.Model), c.Data, cmp.Or(c.Config.Method, "lora"), c.Config.Steps
	if d.Method == "lora" {
		d.Rank, d.Alpha, d.Targets = c.Config.LoRA.Rank, c.Config.LoRA.Alpha, c.Config.LoRA.Targets
	}
	return nil
}

// readMetrics reads metrics.jsonl; a last line without its newline is a record being
// written and waits for the next read.
func (d *RunDetail) readMetrics(p string) error {
	raw, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if i := bytes.LastIndexByte(raw, '\n'); i+1 < len(raw) {
		raw = raw[:i+1]
	}
	s := bufio.NewScanner(bytes.NewReader(raw))
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; s.Scan(); n++ {
		line := bytes.TrimSpace(s.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("metrics.jsonl line %d: %v", n, err)
		}
		d.Records = append(d.Records, rec)
		switch rec.Kind {
		case "train":
			d.LastStep = max(d.LastStep, rec.Step)
			d.TrainLoss = &rec.Loss
			d.TokensPerSec, d.ElapsedSec = rec.TokensPerSec, rec.ElapsedSec
		case "eval":
			d.ValidLoss = &rec.Loss
			if d.BestValidLoss == nil || rec.Loss < *d.BestValidLoss {
				d.BestValidLoss = &rec.Loss
			}
		}
	}
	return s.Err()
}

// findReports finds `ecotune eval` output in the run folder and the folders right below it
// (eval -o RUN/eval is the usual place).
func findReports(folder string) []Report {
	reports := []Report{}
	dirs := []string{""}
	if entries, err := os.ReadDir(folder); err == nil {
		for _, e := range entries {
			if e.IsDir() && validRunName(e.Name()) && !strings.HasPrefix(e.Name(), "checkpoint-") {
				dirs = append(dirs, e.Name())
			}
		}
	}
	for _, sub := range dirs {
		rep := Report{Dir: sub}
		rel := func(f string) string {
			if _, err := os.Stat(filepath.Join(folder, sub, f)); err != nil {
				return ""
			}
			return path.Join(sub, f)
		}
		rep.HTML, rep.JSON, rep.MD = rel("report.html"), rel("report.json"), rel("report.md")
		if rep.HTML == "" && rep.JSON == "" && rep.MD == "" {
			continue
		}
		if rep.JSON != "" {
			rep.Systems = reportSystems(filepath.Join(folder, sub, "report.json"))
		}
		reports = append(reports, rep)
	}
	return reports
}

// reportSystems returns the systems array of a report.json (each system's metric table and
// loss), or nil when the file cannot be read.
func reportSystems(p string) json.RawMessage {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	var rep struct {
		Systems json.RawMessage `json:"systems"`
	}
	if err := json.NewDecoder(f).Decode(&rep); err != nil {
		return nil
	}
	return rep.Systems
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// writeError writes an OpenAI-shaped error, as the APIs beside the studio do.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "param": nil, "code": nil}})
}
