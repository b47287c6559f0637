package serve

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// HandlerOptions configures NewHandler; zero fields take the defaults noted.
type HandlerOptions struct {
	// APIKey, when set, is required as "Authorization: Bearer KEY" on every route but /health.
	APIKey  string
	MaxBody int64         // largest request body in bytes; 0 = 8 MiB
	Timeout time.Duration // longest a request may run; 0 = 10 minutes
	Version string        // reported by /api/version and system_fingerprint
}

// Server is the HTTP face of an Engine: OpenAI's API under /v1, Ollama's under /api,
// adapter management, /health and /metrics. Mount it in any mux.
type Server struct {
	e        *Engine
	opts     HandlerOptions
	mux      *http.ServeMux
	metrics  *metrics
	draining atomic.Bool
}

var _ http.Handler = (*Server)(nil)

// NewHandler returns the server for e.
func NewHandler(e *Engine, opts HandlerOptions) *Server {
	if opts.MaxBody == 0 {
		opts.MaxBody = 8 << 20
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	s := &Server{e: e, opts: opts, mux: http.NewServeMux(), metrics: newMetrics(e)}
	route := func(pattern string, h http.HandlerFunc) {
		s.mux.Handle(pattern, s.metrics.instrument(pattern, h))
	}
	route("POST /v1/chat/completions", s.chatCompletions)
	route("POST /v1/completions", s.completions)
	route("GET /v1/models", s.models)
	route("GET /v1/models/{id}", s.model)
	route("GET /v1/adapters", s.listAdapters)
	route("POST /v1/adapters", s.loadAdapter)
	route("DELETE /v1/adapters/{name}", s.unloadAdapter)
	route("POST /v1/load_lora_adapter", s.loadAdapterVLLM)
	route("POST /v1/unload_lora_adapter", s.unloadAdapterVLLM)
	route("POST /api/generate", s.ollamaGenerate)
	route("POST /api/chat", s.ollamaChat)
	route("GET /api/tags", s.ollamaTags)
	route("POST /api/show", s.ollamaShow)
	route("GET /api/ps", s.ollamaPs)
	route("GET /api/version", s.ollamaVersion)
	route("GET /health", s.health)
	s.mux.Handle("GET /metrics", s.metrics.handler())
	route("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ecotune is running\n")) // Ollama clients probe / for this
	})
	return s
}

// ServeHTTP checks the API key, bounds the body and the request's time, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.APIKey != "" && r.URL.Path != "/health" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ecotune"`)
		writeOpenAIError(w, &apiError{Status: http.StatusUnauthorized, Type: "authentication_error", Code: "invalid_api_key",
			Message: "a valid API key is required: send it as \"Authorization: Bearer KEY\""})
		return
	}
	if s.draining.Load() && r.Method == http.MethodPost {
		writeOpenAIError(w, ErrClosed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBody)
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
	defer cancel()
	s.mux.ServeHTTP(w, r.WithContext(ctx))
}

// RequireKey wraps h with the server's API key check, for routes mounted beside it.
func (s *Server) RequireKey(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.APIKey != "" && !s.authorized(r) {
			writeOpenAIError(w, &apiError{Status: http.StatusUnauthorized, Type: "authentication_error", Code: "invalid_api_key",
				Message: "a valid API key is required: send it as \"Authorization: Bearer KEY\""})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(s.opts.APIKey)) == 1
}

// Drain makes new generation requests fail with 503 while those in flight finish; call it
// before http.Server.Shutdown.
func (s *Server) Drain() { s.draining.Store(true) }

// health serves GET /health: 200 while serving, 503 while draining.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	st := s.e.Stats()
	status, code := "ok", http.StatusOK
	if s.draining.Load() {
		status, code = "shutting down", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"status": status, "slots_idle": st.Slots - st.Busy, "slots_processing": st.Busy, "queue": st.Waiting})
}

// model serves GET /v1/models/{id}.
func (s *Server) model(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	created := s.e.Loaded().Unix()
	if id == s.e.Name() {
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "model", "created": created, "owned_by": "ecotune"})
		return
	}
	for _, a := range s.e.Adapters() {
		if a.Name == id {
			writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "model", "created": created, "owned_by": "ecotune", "parent": s.e.Name(), "root": a.Path})
			return
		}
	}
	writeOpenAIError(w, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "model_not_found", Param: "model",
		Message: "the model " + id + " does not exist"})
}
