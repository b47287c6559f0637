package serve

import (
	"errors"
	"net/http"
)

// adapterJSON is an adapter as the adapter routes report it.
type adapterJSON struct {
	ID    int     `json:"id"`
	Name  string  `json:"name"`
	Path  string  `json:"path"`
	Scale float32 `json:"scale"`
	Rank  int     `json:"rank"`
	Alpha float32 `json:"alpha"`
	InUse int     `json:"in_use"`
}

func adapterOf(a AdapterInfo) adapterJSON {
	return adapterJSON{ID: a.ID, Name: a.Name, Path: a.Path, Scale: a.Scale, Rank: a.Rank, Alpha: a.Alpha, InUse: a.InUse}
}

// listAdapters serves GET /v1/adapters.
func (s *Server) listAdapters(w http.ResponseWriter, r *http.Request) {
	out := []adapterJSON{}
	for _, a := range s.e.Adapters() {
		out = append(out, adapterOf(a))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": out})
}

// loadAdapter serves POST /v1/adapters {name, path, scale}: the base stays loaded.
func (s *Server) loadAdapter(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name  string   `json:"name"`
		Path  string   `json:"path"`
		Scale *float32 `json:"scale"`
	}
	if err := decodeJSON(r, &body); err != nil {
		writeOpenAIError(w, err)
		return
	}
	s.load(w, body.Name, body.Path, body.Scale)
}

func (s *Server) load(w http.ResponseWriter, name, path string, scale *float32) {
	if path == "" {
		writeOpenAIError(w, badRequest("path", "path (the adapter GGUF on the server) is required"))
		return
	}
	sc := float32(1)
	if scale != nil {
		sc = *scale
	}
	info, err := s.e.LoadAdapter(name, path, sc)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, adapterOf(info))
}

// unloadAdapter serves DELETE /v1/adapters/{name}: it waits until no request uses it.
func (s *Server) unloadAdapter(w http.ResponseWriter, r *http.Request) {
	s.unload(w, r, r.PathValue("name"))
}

func (s *Server) unload(w http.ResponseWriter, r *http.Request, name string) {
	if err := s.e.UnloadAdapter(r.Context(), name); err != nil {
		if errors.Is(err, ErrUnknownAdapter) {
			writeOpenAIError(w, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "model_not_found", Param: "name", Message: err.Error()})
			return
		}
		writeOpenAIError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "deleted": true})
}

// loadAdapterVLLM serves vLLM's POST /v1/load_lora_adapter {lora_name, lora_path}.
func (s *Server) loadAdapterVLLM(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name string `json:"lora_name"`
		Path string `json:"lora_path"`
	}
	if err := decodeJSON(r, &body); err != nil {
		writeOpenAIError(w, err)
		return
	}
	s.load(w, body.Name, body.Path, nil)
}

// unloadAdapterVLLM serves vLLM's POST /v1/unload_lora_adapter {lora_name}.
func (s *Server) unloadAdapterVLLM(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name string `json:"lora_name"`
	}
	if err := decodeJSON(r, &body); err != nil {
		writeOpenAIError(w, err)
		return
	}
	s.unload(w, r, body.Name)
}
