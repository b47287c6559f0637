package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// noRunner fails every command: these tests never get as far as running one.
type noRunner struct{}

func (noRunner) Run(context.Context, []string, io.Writer) error {
	return errors.New("no runner in this test")
}

func newTestManager(t *testing.T, maxUpload int64) (*Manager, *httptest.Server) {
	t.Helper()
	m, err := Open(Options{DataDir: t.TempDir(), Base: Base{Name: "base", Path: "/nonexistent/base.gguf"}, Runner: noRunner{}, MaxUpload: maxUpload})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	ts := httptest.NewServer(m.Handler())
	t.Cleanup(ts.Close)
	return m, ts
}

func upload(t *testing.T, ts *httptest.Server, purpose, name string, content []byte) (int, string) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	if purpose != "" {
		w.WriteField("purpose", purpose)
	}
	if name != "" {
		fw, err := w.CreateFormFile("file", name)
		require.NoError(t, err)
		fw.Write(content)
	}
	w.Close()
	resp, err := http.Post(ts.URL+"/v1/files", w.FormDataContentType(), &body)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const chatLine = `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}`

// TestBadUploads: every class of bad upload is an OpenAI-style 400 that names the problem
// (and the line), and leaves no file behind.
func TestBadUploads(t *testing.T) {
	m, ts := newTestManager(t, 1024)
	cases := []struct {
		name, purpose, file string
		content             string
		want                string
	}{
		{"not jsonl", "fine-tune", "a.jsonl", chatLine + "\nthis is not json\n", "line 2: not a JSON object"},
		{"array line", "fine-tune", "a.jsonl", "[1,2]\n", "line 1: not a JSON object"},
		{"no assistant", "fine-tune", "a.jsonl", `{"messages":[{"role":"user","content":"hi"}]}`, "no assistant turn"},
		{"bad role", "fine-tune", "a.jsonl", chatLine + "\n" + `{"messages":[{"role":"robot","content":"x"},{"role":"assistant","content":"y"}]}`, `line 2: messages[0].role "robot"`},
		{"no content", "fine-tune", "a.jsonl", `{"messages":[{"role":"assistant"}]}`, "messages[0] has no content"},
		{"messages type", "fine-tune", "a.jsonl", `{"messages":"hi"}`, "messages must be an array"},
		{"empty messages", "fine-tune", "a.jsonl", `{"messages":[]}`, "messages is empty"},
		{"invalid utf-8", "fine-tune", "a.jsonl", "{\"text\":\"\xff\"}", "not valid UTF-8"},
		{"empty", "fine-tune", "a.jsonl", "", "is empty"},
		{"blank", "fine-tune", "a.jsonl", "\n\n", "no examples"},
		{"too big", "fine-tune", "a.jsonl", strings.Repeat(chatLine+"\n", 20), "larger than the server's upload limit of 1024 bytes"},
		{"type", "fine-tune", "a.exe", "MZ", "must be one of .jsonl"},
		{"purpose", "assistants", "a.jsonl", chatLine, `purpose must be "fine-tune"`},
		{"no file", "fine-tune", "", "", "no file part"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := upload(t, ts, c.purpose, c.file, []byte(c.content))
			assert.Equal(t, 400, status, body)
			var v struct {
				Error struct{ Message, Type string }
			}
			require.NoError(t, json.Unmarshal([]byte(body), &v))
			assert.Contains(t, v.Error.Message, c.want)
			assert.Equal(t, "invalid_request_error", v.Error.Type)
		})
	}
	files, err := m.db.files()
	require.NoError(t, err)
	assert.Empty(t, files)
	status, body := upload(t, ts, "fine-tune", "good.jsonl", []byte(chatLine+"\n"))
	assert.Equal(t, 200, status, body)
}

// TestBadJobRequests: bad job requests are 400s naming the field; a base the server does
// not have is refused before any job exists.
func TestBadJobRequests(t *testing.T) {
	m, ts := newTestManager(t, 1<<20)
	_, body := upload(t, ts, "fine-tune", "good.jsonl", []byte(chatLine+"\n"))
	var f struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(body), &f))
	cases := []struct{ body, want string }{
		{`{"model":"gpt-4o","training_file":"` + f.ID + `"}`, `model \"gpt-4o\" is not available`},
		{`{"model":"base"}`, "training_file is required"},
		{`{"model":"base","training_file":"file-nope"}`, `no file with id \"file-nope\"`},
		{`{"model":"base","training_file":"` + f.ID + `","validation_file":"file-nope"}`, "validation_file"},
		{`{"model":"base","training_file":"` + f.ID + `","hyperparameters":{"n_epochs":0}}`, "n_epochs must be an integer from 1 to 50"},
		{`{"model":"base","training_file":"` + f.ID + `","hyperparameters":{"batch_size":"big"}}`, "batch_size must be a number"},
		{`{"model":"base","training_file":"` + f.ID + `","hyperparameters":{"learning_rate_multiplier":-1}}`, "learning_rate_multiplier"},
		{`{"model":"base","training_file":"` + f.ID + `","hyperparameters":{"lora_r":8}}`, `unknown hyperparameter \"lora_r\"`},
		{`{"model":"base","training_file":"` + f.ID + `","ecotune":{"r":-1}}`, "r must be from 1 to 1024"},
		{`{"model":"base","training_file":"` + f.ID + `","ecotune":{"checkpoint_keep":"most"}}`, "checkpoint_keep is none, ffn or all"},
		{`{"model":"base","training_file":"` + f.ID + `","ecotune":{"checkpoint_keep":"ffn"}}`, "set gradient_checkpointing too"},
		{`{"model":"base","training_file":"` + f.ID + `","suffix":"a:b"}`, "suffix"},
		{`{"model":`, "not a valid job request"},
	}
	for _, c := range cases {
		resp, err := http.Post(ts.URL+"/v1/fine_tuning/jobs", "application/json", strings.NewReader(c.body))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, 400, resp.StatusCode, c.body)
		assert.Contains(t, string(b), c.want, c.body)
	}
	rows, _, err := m.db.jobsPage("", 10)
	require.NoError(t, err)
	assert.Empty(t, rows, "no bad request created a job")
	for _, path := range []string{"/v1/fine_tuning/jobs/ftjob-nope", "/v1/files/file-nope", "/v1/fine_tuning/jobs/ftjob-nope/events"} {
		resp, err := http.Get(ts.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 404, resp.StatusCode, path)
	}
}

// TestFailedJobReportsTheReason: a job whose preparation fails ends "failed" with the
// child's own error line, and a cancelled one "cancelled".
func TestFailedJobReportsTheReason(t *testing.T) {
	m, ts := newTestManager(t, 1<<20)
	_, body := upload(t, ts, "fine-tune", "good.jsonl", []byte(chatLine+"\n"))
	var f struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(body), &f))
	resp, err := http.Post(ts.URL+"/v1/fine_tuning/jobs", "application/json", strings.NewReader(`{"model":"base","training_file":"`+f.ID+`"}`))
	require.NoError(t, err)
	var j Job
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&j))
	resp.Body.Close()
	require.Eventually(t, func() bool {
		r, err := m.db.job(j.ID)
		return err == nil && ended(r.Status)
	}, 10*time.Second, 10*time.Millisecond)
	r, err := m.db.job(j.ID)
	require.NoError(t, err)
	assert.Equal(t, StatusFailed, r.Status)
	require.NotNil(t, r.Error)
	assert.Equal(t, "invalid_training_file", r.Error.Code)
	assert.Contains(t, r.Error.Message, "no runner in this test")
}

// TestTrainArgsCheckpointing: the job's gradient checkpointing settings reach train's
// flags, and none are added when the job does not ask.
func TestTrainArgsCheckpointing(t *testing.T) {
	m, _ := newTestManager(t, 1<<20)
	r := row{Job: Job{ID: "ftjob-x", Seed: 1}, settings: Settings{Hyperparameters: Hyperparameters{NEpochs: 1}}}
	plain := strings.Join(m.trainArgs(r, "out"), " ")
	assert.NotContains(t, plain, "checkpoint")
	r.settings.Ecotune.GradientCheckpointing, r.settings.Ecotune.CheckpointKeep = true, "ffn"
	args := strings.Join(m.trainArgs(r, "out"), " ")
	assert.Contains(t, args, "--gradient-checkpointing")
	assert.Contains(t, args, "--checkpoint-keep ffn")
}
