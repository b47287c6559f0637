package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ecotune/ecotune/internal/apierror"
)

// apiError is reported as OpenAI's error object.
type apiError = apierror.Error

func badRequest(param, format string, args ...any) *apiError {
	return apierror.BadRequest(param, format, args...)
}

func notFound(what, id string) *apiError {
	return &apiError{Status: http.StatusNotFound, Param: what, Message: fmt.Sprintf("no %s with id %q", what, id)}
}

func writeError(w http.ResponseWriter, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		e = &apiError{Status: http.StatusInternalServerError, Message: err.Error()}
	}
	apierror.Write(w, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) { apierror.WriteJSON(w, status, v) }

// Handler serves OpenAI's files and fine-tuning routes; mount it under "/v1/files" and
// "/v1/fine_tuning/" beside the inference API (authentication is the mounter's).
func (m *Manager) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/files", m.uploadFile)
	mux.HandleFunc("GET /v1/files", m.listFiles)
	mux.HandleFunc("GET /v1/files/{id}", m.getFile)
	mux.HandleFunc("GET /v1/files/{id}/content", m.fileContent)
	mux.HandleFunc("GET /v1/files/{id}/preview", m.previewFile)
	mux.HandleFunc("DELETE /v1/files/{id}", m.deleteFile)
	mux.HandleFunc("POST /v1/fine_tuning/jobs", m.createJob)
	mux.HandleFunc("GET /v1/fine_tuning/jobs", m.listJobs)
	mux.HandleFunc("GET /v1/fine_tuning/jobs/{id}", m.getJob)
	mux.HandleFunc("GET /v1/fine_tuning/jobs/{id}/events", m.listEvents)
	mux.HandleFunc("GET /v1/fine_tuning/jobs/{id}/checkpoints", m.listCheckpoints)
	mux.HandleFunc("POST /v1/fine_tuning/jobs/{id}/cancel", m.cancelJob)
	return mux
}

// uploadFile serves POST /v1/files: multipart with "file" and "purpose".
func (m *Manager) uploadFile(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, m.opts.MaxUpload+1<<20) // the file and its multipart framing
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, badRequest("file", "the body must be multipart/form-data with a file and a purpose: %v", err))
		return
	}
	var purpose, filename, tmp string
	var size int64
	defer func() {
		if tmp != "" {
			os.Remove(tmp)
		}
	}()
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			writeError(w, m.uploadErr(err))
			return
		}
		switch part.FormName() {
		case "purpose":
			b, _ := io.ReadAll(io.LimitReader(part, 64))
			purpose = strings.TrimSpace(string(b))
		case "file":
			filename = filepath.Base(part.FileName())
			f, err := os.CreateTemp(filepath.Join(m.opts.DataDir, "files"), ".upload-*")
			if err != nil {
				writeError(w, err)
				return
			}
			tmp = f.Name()
			size, err = io.Copy(f, io.LimitReader(part, m.opts.MaxUpload+1))
			f.Close()
			if err != nil {
				writeError(w, m.uploadErr(err))
				return
			}
			if size > m.opts.MaxUpload {
				writeError(w, badRequest("file", "%s is larger than the server's upload limit of %d bytes", filename, m.opts.MaxUpload))
				return
			}
		}
	}
	switch {
	case purpose != "fine-tune":
		writeError(w, badRequest("purpose", "purpose must be \"fine-tune\" (got %q)", purpose))
		return
	case tmp == "":
		writeError(w, badRequest("file", "the upload has no file part"))
		return
	}
	if err := checkUpload(tmp, filename); err != nil {
		writeError(w, badRequest("file", "%v", err))
		return
	}
	f := File{ID: newID("file-"), Object: "file", Bytes: size, CreatedAt: time.Now().Unix(), Filename: filename, Purpose: purpose}
	f.path = filepath.Join(m.opts.DataDir, "files", f.ID+strings.ToLower(filepath.Ext(filename)))
	if err := os.Rename(tmp, f.path); err != nil {
		writeError(w, err)
		return
	}
	tmp = ""
	if err := m.db.addFile(f); err != nil {
		os.Remove(f.path)
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func (m *Manager) uploadErr(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return badRequest("file", "the upload is larger than the server's limit of %d bytes", m.opts.MaxUpload)
	}
	return badRequest("file", "reading the upload: %v", err)
}

func (m *Manager) listFiles(w http.ResponseWriter, r *http.Request) {
	files, err := m.db.files()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": files, "has_more": false})
}

func (m *Manager) fileByPath(w http.ResponseWriter, r *http.Request) (File, bool) {
	f, err := m.db.file(r.PathValue("id"))
	if errors.Is(err, errNotFound) {
		writeError(w, notFound("file", r.PathValue("id")))
		return File{}, false
	}
	if err != nil {
		writeError(w, err)
		return File{}, false
	}
	return f, true
}

// jobByPath looks up the job the route's {id} names, answering 404 when there is none.
func (m *Manager) jobByPath(w http.ResponseWriter, r *http.Request) (row, bool) {
	jr, err := m.db.job(r.PathValue("id"))
	if errors.Is(err, errNotFound) {
		writeError(w, notFound("fine-tuning job", r.PathValue("id")))
		return row{}, false
	}
	if err != nil {
		writeError(w, err)
		return row{}, false
	}
	return jr, true
}

func (m *Manager) getFile(w http.ResponseWriter, r *http.Request) {
	if f, ok := m.fileByPath(w, r); ok {
		writeJSON(w, http.StatusOK, f)
	}
}

func (m *Manager) fileContent(w http.ResponseWriter, r *http.Request) {
	if f, ok := m.fileByPath(w, r); ok {
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", f.Filename))
		http.ServeFile(w, r, f.path)
	}
}

func (m *Manager) deleteFile(w http.ResponseWriter, r *http.Request) {
	f, ok := m.fileByPath(w, r)
	if !ok {
		return
	}
	if busy, err := m.db.fileInUse(f.ID); err != nil || busy {
		if err == nil {
			err = badRequest("file_id", "file %s is used by a job that has not ended", f.ID)
		}
		writeError(w, err)
		return
	}
	if err := m.db.deleteFile(f.ID); err != nil {
		writeError(w, err)
		return
	}
	if f.Purpose == "fine-tune" {
		os.Remove(f.path) // result files live in their job's folder and stay with it
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": f.ID, "object": "file", "deleted": true})
}

// previewFile serves GET /v1/files/{id}/preview?n=N: the first examples as the base will
// see them, with the trained tokens marked.
func (m *Manager) previewFile(w http.ResponseWriter, r *http.Request) {
	f, ok := m.fileByPath(w, r)
	if !ok {
		return
	}
	n := 5
	if s := r.URL.Query().Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 50 {
			writeError(w, badRequest("n", "n must be an integer from 1 to 50"))
			return
		}
		n = v
	}
	examples, err := m.preview(r.Context(), f, n)
	if err != nil {
		writeError(w, badRequest("file", "%v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": examples})
}

// createRequest is POST /v1/fine_tuning/jobs.
type createRequest struct {
	Model           string           `json:"model"`
	TrainingFile    string           `json:"training_file"`
	ValidationFile  string           `json:"validation_file"`
	Suffix          string           `json:"suffix"`
	Seed            *int64           `json:"seed"`
	Hyperparameters *json.RawMessage `json:"hyperparameters"`
	Ecotune         EcotuneSettings  `json:"ecotune"`
}

// hyperparameters reads OpenAI's values, each a number or "auto".
func parseHyper(raw *json.RawMessage) (Hyperparameters, error) {
	h := Hyperparameters{NEpochs: 3, BatchSize: 1, LearningRateMultiplier: 1}
	if raw == nil {
		return h, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(*raw, &fields); err != nil {
		return h, badRequest("hyperparameters", "hyperparameters must be an object")
	}
	num := func(name string, set func(float64) error) error {
		v, ok := fields[name]
		if !ok || string(v) == `"auto"` || string(v) == "null" {
			return nil
		}
		var f float64
		if err := json.Unmarshal(v, &f); err != nil {
			return badRequest("hyperparameters."+name, "%s must be a number or \"auto\"", name)
		}
		return set(f)
	}
	for name, set := range map[string]func(float64) error{
		"n_epochs": func(f float64) error {
			if f < 1 || f > 50 || f != float64(int(f)) {
				return badRequest("hyperparameters.n_epochs", "n_epochs must be an integer from 1 to 50")
			}
			h.NEpochs = int(f)
			return nil
		},
		"batch_size": func(f float64) error {
			if f < 1 || f > 256 || f != float64(int(f)) {
				return badRequest("hyperparameters.batch_size", "batch_size must be an integer from 1 to 256")
			}
			h.BatchSize = int(f)
			return nil
		},
		"learning_rate_multiplier": func(f float64) error {
			if f <= 0 || f > 100 {
				return badRequest("hyperparameters.learning_rate_multiplier", "learning_rate_multiplier must be in (0, 100]")
			}
			h.LearningRateMultiplier = f
			return nil
		},
	} {
		if err := num(name, set); err != nil {
			return h, err
		}
	}
	for name := range fields {
		switch name {
		case "n_epochs", "batch_size", "learning_rate_multiplier":
		default:
			return h, badRequest("hyperparameters."+name, "unknown hyperparameter %q (n_epochs, batch_size, learning_rate_multiplier; LoRA settings go in \"ecotune\")", name)
		}
	}
	return h, nil
}

func checkEcotune(e EcotuneSettings) error {
	switch {
	case e.Rank < 0 || e.Rank > 1024:
		return badRequest("ecotune.r", "r must be from 1 to 1024")
	case e.Alpha < 0:
		return badRequest("ecotune.alpha", "alpha must be positive")
	case e.SeqLen < 0 || (e.SeqLen > 0 && e.SeqLen < 8):
		return badRequest("ecotune.seq_len", "seq_len must be at least 8")
	case e.LR < 0 || e.LR > 1:
		return badRequest("ecotune.lr", "lr must be in (0, 1]")
	case e.Steps < 0 || e.SaveEvery < 0 || e.EvalEvery < -1:
		return badRequest("ecotune", "steps and save_every must not be negative")
	case strings.ContainsAny(string(e.Targets)+e.Dtype, " \t\n"):
		return badRequest("ecotune.targets", "targets and dtype take no spaces")
	case e.CheckpointKeep != "" && e.CheckpointKeep != "none" && e.CheckpointKeep != "ffn" && e.CheckpointKeep != "all":
		return badRequest("ecotune.checkpoint_keep", "checkpoint_keep is none, ffn or all")
	case e.CheckpointKeep != "" && e.CheckpointKeep != "none" && !e.GradientCheckpointing:
		return badRequest("ecotune.checkpoint_keep", "checkpoint_keep chooses what gradient checkpointing keeps: set gradient_checkpointing too")
	}
	return nil
}

func (m *Manager) createJob(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	if err := dec.Decode(&req); err != nil {
		writeError(w, badRequest("", "the body is not a valid job request: %v", err))
		return
	}
	hyper, err := parseHyper(req.Hyperparameters)
	if err == nil {
		err = checkEcotune(req.Ecotune)
	}
	switch {
	case err != nil:
	case req.Model != m.opts.Base.Name:
		err = &apiError{Status: http.StatusBadRequest, Param: "model", Code: "model_not_available",
			Message: fmt.Sprintf("model %q is not available for fine-tuning here; this server fine-tunes %q", req.Model, m.opts.Base.Name)}
	case len(req.Suffix) > 64 || strings.ContainsAny(req.Suffix, ":/\\?#% \t\n"):
		err = badRequest("suffix", "suffix must be at most 64 characters without spaces, colons or slashes")
	case req.TrainingFile == "":
		err = badRequest("training_file", "training_file is required")
	}
	if err != nil {
		writeError(w, err)
		return
	}
	for _, id := range []struct{ param, id string }{{"training_file", req.TrainingFile}, {"validation_file", req.ValidationFile}} {
		if id.id == "" {
			continue
		}
		f, err := m.db.file(id.id)
		if errors.Is(err, errNotFound) {
			writeError(w, badRequest(id.param, "no file with id %q", id.id))
			return
		}
		if err == nil && f.Purpose != "fine-tune" {
			err = badRequest(id.param, "file %s has purpose %q, not fine-tune", f.ID, f.Purpose)
		}
		if err != nil {
			writeError(w, err)
			return
		}
	}
	seed := time.Now().UnixNano() % (1 << 31)
	if req.Seed != nil {
		seed = *req.Seed
	}
	jr := row{Job: Job{Object: "fine_tuning.job", ID: newID("ftjob-"), CreatedAt: time.Now().Unix(), Model: req.Model,
		Status: StatusValidating, TrainingFile: req.TrainingFile, Seed: seed, ResultFiles: []string{}},
		settings: Settings{Hyperparameters: hyper, Ecotune: req.Ecotune}}
	jr.vfile = req.ValidationFile
	if req.Suffix != "" {
		jr.Suffix = &req.Suffix
	}
	if err := m.db.addJob(jr); err != nil {
		writeError(w, err)
		return
	}
	m.event(jr.ID, Event{Message: "Created fine-tuning job: " + jr.ID})
	m.poke()
	m.respondJob(w, jr.ID)
}

func (m *Manager) respondJob(w http.ResponseWriter, id string) {
	jr, err := m.db.job(id)
	if errors.Is(err, errNotFound) {
		writeError(w, notFound("fine-tuning job", id))
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, jobJSON(jr))
}

// jobJSON fills the fields the stored row leaves out of the API shape.
func jobJSON(r row) Job {
	j := r.Job
	if j.TrainedTokens != nil && *j.TrainedTokens == 0 && j.Status != StatusSucceeded {
		j.TrainedTokens = nil
	}
	if j.ResultFiles == nil {
		j.ResultFiles = []string{}
	}
	return j
}

func (m *Manager) listJobs(w http.ResponseWriter, r *http.Request) {
	limit := 20
	if s := r.URL.Query().Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 100 {
			writeError(w, badRequest("limit", "limit must be an integer from 1 to 100"))
			return
		}
		limit = v
	}
	rows, more, err := m.db.jobsPage(r.URL.Query().Get("after"), limit)
	if err != nil {
		writeError(w, err)
		return
	}
	data := make([]Job, len(rows))
	for i, jr := range rows {
		data[i] = jobJSON(jr)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": more})
}

func (m *Manager) getJob(w http.ResponseWriter, r *http.Request) { m.respondJob(w, r.PathValue("id")) }

// listEvents serves a job's events: OpenAI's list (newest first, `after` an event id to
// page back from, `limit`), or with ?stream=true every event oldest first as server-sent
// events, following the job until it ends.
func (m *Manager) listEvents(w http.ResponseWriter, r *http.Request) {
	jr, ok := m.jobByPath(w, r)
	if !ok {
		return
	}
	id := jr.ID
	if r.URL.Query().Get("stream") == "true" {
		m.streamEvents(w, r, jr)
		return
	}
	limit := 20
	if s := r.URL.Query().Get("limit"); s != "" {
		if v, err := strconv.Atoi(s); err == nil && v >= 1 && v <= 1000 {
			limit = v
		} else {
			writeError(w, badRequest("limit", "limit must be an integer from 1 to 1000"))
			return
		}
	}
	all, err := m.db.events(id, 0, 1<<30)
	if err != nil {
		writeError(w, err)
		return
	}
	// Newest first; after names the event the previous page ended with.
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	if after := r.URL.Query().Get("after"); after != "" {
		for i, ev := range all {
			if ev.ID == after {
				all = all[i+1:]
				break
			}
		}
	}
	more := len(all) > limit
	if more {
		all = all[:limit]
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": all, "has_more": more})
}

func (m *Manager) streamEvents(w http.ResponseWriter, r *http.Request, jr row) {
	changed, cancel := m.watch.subscribe(jr.ID)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	var last int64
	for {
		evs, err := m.db.events(jr.ID, last, 1000)
		if err != nil {
			return
		}
		for _, ev := range evs {
			b, _ := json.Marshal(ev)
			fmt.Fprintf(w, "data: %s\n\n", b)
			last = ev.seq
		}
		if flusher != nil {
			flusher.Flush()
		}
		cur, err := m.db.job(jr.ID)
		if err != nil || ended(cur.Status) {
			if len(evs) == 0 {
				fmt.Fprint(w, "data: [DONE]\n\n")
				return
			}
			continue // drain what arrived with the final status first
		}
		select {
		case <-changed:
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
			return
		}
	}
}

func (m *Manager) listCheckpoints(w http.ResponseWriter, r *http.Request) {
	jr, ok := m.jobByPath(w, r)
	if !ok {
		return
	}
	id := jr.ID
	cks, err := m.db.checkpoints(id)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": cks, "has_more": false,
		"first_id": firstID(cks), "last_id": lastID(cks)})
}

func firstID(c []Checkpoint) any {
	if len(c) == 0 {
		return nil
	}
	return c[0].ID
}

func lastID(c []Checkpoint) any {
	if len(c) == 0 {
		return nil
	}
	return c[len(c)-1].ID
}

// cancelJob serves POST .../cancel: a waiting job ends at once; a running one is
// interrupted (its checkpoint is saved) and ends when the child has stopped.
func (m *Manager) cancelJob(w http.ResponseWriter, r *http.Request) {
	jr, ok := m.jobByPath(w, r)
	if !ok {
		return
	}
	id := jr.ID
	if ended(jr.Status) {
		writeError(w, badRequest("", "job %s has already %s", id, jr.Status))
		return
	}
	m.mu.Lock()
	cancel, running := m.live[id]
	m.mu.Unlock()
	if running {
		cancel()
		ch, unsub := m.watch.subscribe(id)
		defer unsub()
		deadline := time.After(3 * time.Minute)
		for {
			cur, err := m.db.job(id)
			if err != nil || ended(cur.Status) {
				break
			}
			select {
			case <-ch:
			case <-time.After(200 * time.Millisecond):
			case <-deadline:
				writeError(w, &apiError{Status: http.StatusGatewayTimeout, Message: "the job did not stop within 3 minutes; it is still being cancelled"})
				return
			case <-r.Context().Done():
				return
			}
		}
	} else {
		m.finish(id, StatusCancelled, nil, Event{Message: "Fine-tuning job cancelled."})
	}
	m.respondJob(w, id)
}
