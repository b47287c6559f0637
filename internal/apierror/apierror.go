// Package apierror reports errors as OpenAI's API does, for the servers that speak its
// dialect: serve's inference routes and jobs' files and fine-tuning routes.
package apierror

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error is an error with the HTTP status and OpenAI error fields it is reported with.
type Error struct {
	Status  int
	Type    string // OpenAI's error type; "" is invalid_request_error below 500, server_error from it
	Code    string // OpenAI's error code, when it has one
	Param   string // the request field at fault
	Message string
}

func (e *Error) Error() string { return e.Message }

// BadRequest is a 400 naming the field at fault.
func BadRequest(param, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Message: fmt.Sprintf(format, args...)}
}

// Object is e as OpenAI's error object, {"error": {message, type, param, code}}: a
// response's body, or the last event of a stream that failed.
func (e *Error) Object() map[string]any {
	typ := e.Type
	if typ == "" {
		typ = "invalid_request_error"
		if e.Status >= 500 {
			typ = "server_error"
		}
	}
	return map[string]any{"error": map[string]any{
		"message": e.Message, "type": typ, "param": nullable(e.Param), "code": nullable(e.Code),
	}}
}

// Write writes e as OpenAI's error object; a 429 or 503 also says when to retry.
func Write(w http.ResponseWriter, e *Error) {
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	WriteJSON(w, e.Status, e.Object())
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
