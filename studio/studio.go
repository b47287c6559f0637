// Package studio is ecotune's web studio: one page, embedded in the binary, that chats with
// the models `ecotune serve` serves (side by side with the base), starts and watches
// fine-tuning jobs through the jobs API, and shows the run folders `ecotune train` wrote,
// with their curves and `ecotune eval` reports. The page talks to the OpenAI-shaped APIs
// mounted beside it; this package adds only what no other API offers, under /studio/api/.
package studio

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// web holds the page: plain HTML, CSS and JavaScript modules, readable as they are served.
//
//go:embed web
var web embed.FS

// Options configures New; the zero value serves the page with no runs folder.
type Options struct {
	// RunsDir is the folder whose subfolders are run folders (`ecotune train --out`); "" lists none.
	RunsDir string
	// RequireKey, when set, wraps the routes under /studio/api/ (the server's API key check,
	// serve.Server.RequireKey); the page and its assets stay public so a browser can load them.
	RequireKey func(http.Handler) http.Handler
	// Fallback, when set, answers GET / for clients that do not ask for HTML (Ollama clients
	// probe / for a plain-text answer).
	Fallback http.Handler
}

// handler serves the studio.
type handler struct {
	opts   Options
	mux    *http.ServeMux
	assets http.Handler
}

// New returns the studio's handler: mount it at "GET /{$}" and "/studio/".
func New(opts Options) http.Handler {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	h := &handler{opts: opts, mux: http.NewServeMux(), assets: http.FileServerFS(sub)}
	protect := func(x http.Handler) http.Handler {
		if opts.RequireKey != nil {
			return opts.RequireKey(x)
		}
		return x
	}
	h.mux.HandleFunc("GET /{$}", h.index)
	h.mux.Handle("GET /studio/", http.StripPrefix("/studio", http.HandlerFunc(h.asset)))
	h.mux.Handle("GET /studio/api/runs", protect(http.HandlerFunc(h.listRuns)))
	h.mux.Handle("GET /studio/api/runs/{name}", protect(http.HandlerFunc(h.getRun)))
	h.mux.Handle("GET /studio/api/runs/{name}/files/{file...}", protect(http.HandlerFunc(h.runFile)))
	h.mux.Handle("GET /studio/api/", protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no studio route "+r.Method+" "+r.URL.Path)
	})))
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// index serves the page itself, or hands a non-browser probe of / to Fallback.
func (h *handler) index(w http.ResponseWriter, r *http.Request) {
	if h.opts.Fallback != nil && !strings.Contains(r.Header.Get("Accept"), "text/html") {
		h.opts.Fallback.ServeHTTP(w, r)
		return
	}
	page, err := web.ReadFile("web/index.html")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(page)
}

// asset serves a file of web/ (the page's scripts and style) below /studio/.
func (h *handler) asset(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" || r.URL.Path == "/index.html" {
		http.Redirect(w, r, "/", http.StatusFound)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	h.assets.ServeHTTP(w, r)
}
