package apierror

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWrite checks the error object OpenAI's clients parse: the type a status implies
// when none is given, null param and code when empty, and Retry-After on 429 and 503.
func TestWrite(t *testing.T) {
	for _, c := range []struct {
		e          *Error
		typ, retry string
		param      any
	}{
		{BadRequest("seed", "seed must be an integer"), "invalid_request_error", "", "seed"},
		{&Error{Status: http.StatusNotFound, Message: "no file"}, "invalid_request_error", "", nil},
		{&Error{Status: http.StatusInternalServerError, Message: "broke"}, "server_error", "", nil},
		{&Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "queue_full", Message: "full"}, "rate_limit_error", "1", nil},
		{&Error{Status: http.StatusServiceUnavailable, Message: "closing"}, "server_error", "1", nil},
	} {
		rec := httptest.NewRecorder()
		Write(rec, c.e)
		assert.Equal(t, c.e.Status, rec.Code)
		assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		assert.Equal(t, c.retry, rec.Header().Get("Retry-After"), c.e.Message)
		var body struct {
			Error struct {
				Message string `json:"message"`
				Type    string `json:"type"`
				Param   any    `json:"param"`
				Code    any    `json:"code"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		assert.Equal(t, c.e.Message, body.Error.Message)
		assert.Equal(t, c.typ, body.Error.Type)
		assert.Equal(t, c.param, body.Error.Param)
		if c.e.Code == "" {
			assert.Nil(t, body.Error.Code)
		} else {
			assert.Equal(t, c.e.Code, body.Error.Code)
		}
	}
}
