package studio

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ecotune/ecotune/serve"
)

// fakeJobs is a stand-in for the jobs package's HTTP API (OpenAI's fine-tuning shapes),
// with scripted training: a job runs its steps on a timer, sending a metrics event for each,
// and on success registers the fixture's adapter as its fine_tuned_model, so the page's
// "chat with the result" talks to a real model. Replace it with the real handler once jobs/
// exists.
type fakeJobs struct {
	ctx      context.Context
	engine   *serve.Engine
	adapter  string
	stepTime time.Duration
	// steps, when set, holds each training step until the test sends on it, so that a slow
	// machine cannot run a job to its end between two looks of the test.
	steps chan struct{}

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change, to wake event streams
	files    []map[string]any
	contents map[string][]byte
	jobs     []*fakeJob
	requests []map[string]any // every job request, as the page sent it
}

type fakeJob struct {
	obj    map[string]any
	events []map[string]any
	cancel context.CancelFunc
}

func newFakeJobs(ctx context.Context, e *serve.Engine, adapter string, stepTime time.Duration) *fakeJobs {
	return &fakeJobs{ctx: ctx, engine: e, adapter: adapter, stepTime: stepTime, changed: make(chan struct{}), contents: map[string][]byte{}}
}

func (f *fakeJobs) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/files", f.upload)
	mux.HandleFunc("GET /v1/files", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSON(w, 200, map[string]any{"object": "list", "data": f.files, "has_more": false})
	})
	mux.HandleFunc("GET /v1/files/{id}/preview", f.preview)
	mux.HandleFunc("POST /v1/fine_tuning/jobs", f.create)
	mux.HandleFunc("GET /v1/fine_tuning/jobs", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var data []map[string]any
		for _, j := range slices.Backward(f.jobs) {
			data = append(data, j.obj)
		}
		writeJSON(w, 200, map[string]any{"object": "list", "data": data, "has_more": false})
	})
	mux.HandleFunc("GET /v1/fine_tuning/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.withJob(w, r, func(j *fakeJob) { writeJSON(w, 200, j.obj) })
	})
	mux.HandleFunc("POST /v1/fine_tuning/jobs/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		f.withJob(w, r, func(j *fakeJob) {
			if !terminal(j.obj["status"]) {
				j.cancel()
				f.setStatus(j, "cancelled", "info", "Job was cancelled.")
			}
			writeJSON(w, 200, j.obj)
		})
	})
	mux.HandleFunc("GET /v1/fine_tuning/jobs/{id}/events", f.events)
	return mux
}

func terminal(status any) bool {
	return status == "succeeded" || status == "failed" || status == "cancelled"
}

// withJob runs do with the job named in the path, under the lock.
func (f *fakeJobs) withJob(w http.ResponseWriter, r *http.Request, do func(*fakeJob)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.obj["id"] == r.PathValue("id") {
			do(j)
			return
		}
	}
	writeError(w, 404, "no job "+r.PathValue("id"))
}

// touch wakes every event stream; call with f.mu held.
func (f *fakeJobs) touch() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// event appends an event to j; call with f.mu held.
func (f *fakeJobs) event(j *fakeJob, level, typ, msg string, data map[string]any) {
	e := map[string]any{"object": "fine_tuning.job.event", "id": fmt.Sprintf("%s-ev-%d", j.obj["id"], len(j.events)+1),
		"created_at": time.Now().Unix(), "level": level, "message": msg, "type": typ, "data": data}
	j.events = append(j.events, e)
	f.touch()
}

func (f *fakeJobs) setStatus(j *fakeJob, status, level, msg string) {
	j.obj["status"] = status
	if terminal(status) {
		j.obj["finished_at"] = time.Now().Unix()
	}
	f.event(j, level, "message", msg, nil)
}

func (f *fakeJobs) upload(w http.ResponseWriter, r *http.Request) {
	file, hdr, err := r.FormFile("file")
	if err != nil || r.FormValue("purpose") != "fine-tune" {
		writeError(w, 400, fmt.Sprintf("want a multipart file and purpose=fine-tune (%v)", err))
		return
	}
	body, _ := io.ReadAll(file)
	f.mu.Lock()
	defer f.mu.Unlock()
	id := fmt.Sprintf("file-%d", len(f.files)+1)
	obj := map[string]any{"id": id, "object": "file", "bytes": len(body), "created_at": time.Now().Unix(), "filename": hdr.Filename, "purpose": "fine-tune"}
	f.files = append(f.files, obj)
	f.contents[id] = body
	writeJSON(w, 200, obj)
}

// preview applies ChatML to the first n conversations and marks the assistant's content
// as trained, as the real preview marks the tokens training targets.
func (f *fakeJobs) preview(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	body, ok := f.contents[r.PathValue("id")]
	f.mu.Unlock()
	if !ok {
		writeError(w, 404, "no file "+r.PathValue("id"))
		return
	}
	var data []map[string]any
	s := bufio.NewScanner(bytes.NewReader(body))
	for s.Scan() && len(data) < 5 {
		var ex struct {
			Messages []struct{ Role, Content string }
		}
		if err := json.Unmarshal(s.Bytes(), &ex); err != nil {
			writeError(w, 400, "line is not JSON: "+err.Error())
			return
		}
		var segs []map[string]any
		for _, m := range ex.Messages {
			segs = append(segs, map[string]any{"text": "<|im_start|>" + m.Role + "\n", "trained": false},
				map[string]any{"text": m.Content, "trained": m.Role == "assistant"},
				map[string]any{"text": "<|im_end|>\n", "trained": m.Role == "assistant"})
		}
		data = append(data, map[string]any{"segments": segs})
	}
	writeJSON(w, 200, map[string]any{"object": "list", "data": data})
}

func (f *fakeJobs) create(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, 400, err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.contents[fmt.Sprint(req["training_file"])]; !ok {
		writeError(w, 400, fmt.Sprintf("training_file %v does not exist", req["training_file"]))
		return
	}
	f.requests = append(f.requests, req)
	steps := 10
	if eco, ok := req["ecotune"].(map[string]any); ok {
		if n, ok := eco["steps"].(float64); ok {
			steps = int(n)
		}
	}
	id := fmt.Sprintf("ftjob-%d", len(f.jobs)+1)
	ctx, cancel := context.WithCancel(f.ctx)
	j := &fakeJob{cancel: cancel, obj: map[string]any{"id": id, "object": "fine_tuning.job", "model": req["model"], "status": "validating_files",
		"fine_tuned_model": nil, "trained_tokens": nil, "error": nil, "created_at": time.Now().Unix(), "finished_at": nil,
		"training_file": req["training_file"], "validation_file": req["validation_file"], "hyperparameters": req["hyperparameters"], "seed": req["seed"]}}
	f.jobs = append(f.jobs, j)
	f.event(j, "info", "message", "Validating training file: "+fmt.Sprint(req["training_file"]), nil)
	go f.train(ctx, j, steps, fmt.Sprint(req["suffix"]))
	writeJSON(w, 200, j.obj)
}

// train scripts a run: a loss that falls, an evaluation every 4 steps, a cosine schedule.
func (f *fakeJobs) train(ctx context.Context, j *fakeJob, steps int, suffix string) {
	tick := time.NewTicker(f.stepTime)
	defer tick.Stop()
	wait := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
			return true
		}
	}
	if !wait() {
		return
	}
	f.mu.Lock()
	f.setStatus(j, "queued", "info", "Files validated, job queued")
	f.mu.Unlock()
	if !wait() {
		return
	}
	f.mu.Lock()
	f.setStatus(j, "running", "info", "Fine-tuning job started")
	f.mu.Unlock()
	for step := 1; step <= steps; step++ {
		if f.steps != nil {
			select {
			case <-ctx.Done():
				return
			case <-f.steps:
			}
		} else if !wait() {
			return
		}
		loss := 2.5*math.Exp(-float64(step)/6) + 0.8
		data := map[string]any{"step": step, "total_steps": steps, "train_loss": loss, "valid_loss": nil,
			"learning_rate": 2e-4 * 0.5 * (1 + math.Cos(math.Pi*float64(step)/float64(steps))), "tokens_per_sec": 1500 + 10*float64(step),
			"eta_seconds": f.stepTime.Seconds() * float64(steps-step)}
		if step%4 == 0 || step == steps {
			data["valid_loss"] = loss + 0.15
		}
		f.mu.Lock()
		if terminal(j.obj["status"]) {
			f.mu.Unlock()
			return
		}
		j.obj["trained_tokens"] = step * 512
		f.event(j, "info", "metrics", fmt.Sprintf("Step %d/%d: training loss=%.4f", step, steps, loss), data)
		f.mu.Unlock()
	}
	model := fmt.Sprintf("ft:%s:%s:%s", j.obj["model"], suffix, j.obj["id"])
	_, err := f.engine.LoadAdapter(model, f.adapter, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		j.obj["error"] = map[string]any{"message": err.Error(), "code": "adapter_load", "param": nil}
		f.setStatus(j, "failed", "error", "The job failed: "+err.Error())
		return
	}
	j.obj["fine_tuned_model"] = model
	f.event(j, "info", "message", "New fine-tuned model created: "+model, nil)
	f.setStatus(j, "succeeded", "info", "The job has successfully completed")
}

// events lists a job's events newest first (OpenAI's order), or with ?stream=true sends
// them oldest first as server-sent events, then each new one, until the job ends.
func (f *fakeJobs) events(w http.ResponseWriter, r *http.Request) {
	var job *fakeJob
	f.withJob(w, r, func(j *fakeJob) { job = j })
	if job == nil {
		return
	}
	if r.URL.Query().Get("stream") != "true" {
		f.mu.Lock()
		defer f.mu.Unlock()
		data := slices.Clone(job.events)
		slices.Reverse(data)
		writeJSON(w, 200, map[string]any{"object": "list", "data": data, "has_more": false})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	sent := 0
	for {
		f.mu.Lock()
		pending := slices.Clone(job.events[sent:])
		done := terminal(job.obj["status"])
		changed := f.changed
		f.mu.Unlock()
		for _, e := range pending {
			b, _ := json.Marshal(e)
			fmt.Fprintf(w, "data: %s\n\n", b)
		}
		sent += len(pending)
		w.(http.Flusher).Flush()
		if done {
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
}

// request returns the job request number i the page sent.
func (f *fakeJobs) request(i int) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= len(f.requests) {
		return nil
	}
	return f.requests[i]
}
