package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/ecotune/ecotune/internal/apierror"
)

// apiError is an error with the HTTP status and OpenAI error fields it is reported with.
type apiError = apierror.Error

func badRequest(param, format string, args ...any) *apiError {
	return apierror.BadRequest(param, format, args...)
}

// toAPIError maps engine errors to statuses: a full queue is 429, an unknown adapter or
// model 404, a bad field or an over-long prompt 400, shutdown 503.
func toAPIError(err error) *apiError {
	var api *apiError
	var inv *InvalidRequestError
	var long *PromptTooLongError
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &api):
		return api
	case errors.Is(err, ErrQueueFull):
		return &apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "queue_full", Message: err.Error()}
	case errors.Is(err, ErrClosed):
		return &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Message: err.Error()}
	case errors.Is(err, ErrUnknownAdapter):
		return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "model_not_found", Param: "model", Message: err.Error()}
	case errors.As(err, &long):
		return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "context_length_exceeded", Param: "messages", Message: err.Error()}
	case errors.As(err, &inv):
		return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: inv.Field, Message: inv.Error()}
	case errors.As(err, &maxBytes):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Message: fmt.Sprintf("the request body is larger than the server's limit of %d bytes", maxBytes.Limit)}
	default:
		return &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: err.Error()}
	}
}

// writeOpenAIError writes err as OpenAI's error object.
func writeOpenAIError(w http.ResponseWriter, err error) { apierror.Write(w, toAPIError(err)) }

// writeOllamaError writes err as Ollama's {"error": "..."}.
func writeOllamaError(w http.ResponseWriter, err error) {
	e := toAPIError(err)
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(1))
	}
	msg := e.Message
	if e.Param != "" && e.Status == http.StatusBadRequest {
		msg = e.Param + ": " + msg
	}
	writeJSON(w, e.Status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) { apierror.WriteJSON(w, status, v) }

// decodeJSON reads a request body of at most the handler's limit into v, strictly: an
// unknown type for a known field is a 400 that names the field.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var maxBytes *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		var api *apiError
		switch {
		case errors.As(err, &api):
			return api
		case errors.As(err, &maxBytes):
			return err
		case errors.As(err, &typeErr):
			// Embedded request structs show up in the path; clients know only the JSON names.
			field := typeErr.Field
			for _, embedded := range []string{"samplingFields.", "ollamaCommon."} {
				field = strings.ReplaceAll(field, embedded, "")
			}
			return badRequest(field, "%s must be %s, not a JSON %s", fieldName(field), jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
		case errors.As(err, &syntaxErr):
			return badRequest("", "the body is not valid JSON: %v (at byte %d)", err, syntaxErr.Offset)
		default:
			return badRequest("", "the body is not valid JSON: %v", err)
		}
	}
	if dec.More() {
		return badRequest("", "the body holds more than one JSON value")
	}
	return nil
}

func fieldName(f string) string {
	if f == "" {
		return "the body"
	}
	return f
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	default:
		return "a number"
	}
}
