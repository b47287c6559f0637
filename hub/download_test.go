package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fault is what the test server does with one request to the file.
type fault int

const (
	serve         fault = iota // honour Range, send the bytes
	tooMany                    // 429 with Retry-After: 2
	unavailable                // 503
	dropHalf                   // announce everything, send half of what was asked, cut the connection
	ignoreRange                // answer 200 with the whole file whatever the Range
	corrupt                    // send the bytes with one flipped
	shortLength                // announce and send fewer bytes than the file has (a wrong size)
	forbidden                  // 403
	redirectToCDN              // 302 to /cdn with X-Linked-Etag and X-Linked-Size, like the hub
)

// flakyHub serves one file, misbehaving by a script: request i gets script[i], and
// requests past the script get serve.
type flakyHub struct {
	t       *testing.T
	content []byte
	mu      sync.Mutex
	script  []fault
	ranges  []string // the Range header of each request to the file
	auth    []string
}

func newFlakyHub(t *testing.T, size int, script ...fault) (*flakyHub, *httptest.Server) {
	content := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), 9))
	for i := range content {
		content[i] = byte(r.UintN(256))
	}
	h := &flakyHub{t: t, content: content, script: script}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv
}

func (h *flakyHub) sha() string {
	s := sha256.Sum256(h.content)
	return hex.EncodeToString(s[:])
}

func (h *flakyHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/owner/repo/resolve/main/dir/model.gguf" && r.URL.Path != "/cdn/model.gguf" {
		http.NotFound(w, r)
		return
	}
	h.mu.Lock()
	f := serve
	if len(h.script) > 0 {
		f, h.script = h.script[0], h.script[1:]
	}
	h.ranges = append(h.ranges, r.Header.Get("Range"))
	h.auth = append(h.auth, r.Header.Get("Authorization"))
	h.mu.Unlock()

	start := int64(0)
	if v, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok && f != ignoreRange {
		s, _, _ := strings.Cut(v, "-")
		start, _ = strconv.ParseInt(s, 10, 64)
	}
	n := int64(len(h.content))
	body := h.content[start:]
	switch f {
	case tooMany:
		w.Header().Set("Retry-After", "2")
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	case unavailable:
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	case forbidden:
		http.Error(w, "gated", http.StatusForbidden)
		return
	case redirectToCDN:
		w.Header().Set("X-Linked-Etag", `"`+h.sha()+`"`)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(h.content)))
		http.Redirect(w, r, "/cdn/model.gguf", http.StatusFound)
		return
	case corrupt:
		body = append([]byte(nil), body...)
		body[len(body)/2] ^= 0xff
	}
	if f == shortLength {
		body = body[:len(body)-100]
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if start > 0 {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, n-1, n))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	if f == dropHalf {
		_, _ = w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		require.NoError(h.t, err)
		conn.Close()
		return
	}
	_, _ = w.Write(body)
}

func testClient(srv *httptest.Server, delays *[]time.Duration) *Client {
	return &Client{Endpoint: srv.URL, Token: "hf_secret", HTTP: srv.Client(), MinDelay: 100 * time.Millisecond, MaxDelay: time.Second,
		sleep: func(d time.Duration) { *delays = append(*delays, d) }}
}

var ref = Ref{Repo: "owner/repo", File: "dir/model.gguf"}

// TestDownloadSurvivesMisbehavingServer runs the faults one after another in one
// download: every one is survived, the file is exact, and resumption uses Range.
func TestDownloadSurvivesMisbehavingServer(t *testing.T) {
	h, srv := newFlakyHub(t, 3<<20, redirectToCDN, dropHalf, tooMany, unavailable, dropHalf, shortLength, ignoreRange)
	var delays []time.Duration
	c := testClient(srv, &delays)
	var progress []Progress
	c.Progress = func(p Progress) { progress = append(progress, p) }
	dir := t.TempDir()
	path, err := c.Download(context.Background(), ref, dir)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "model.gguf"), path)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, string(got) == string(h.content), "downloaded bytes equal the served file")
	assert.NoFileExists(t, path+".part")

	// The redirect carried the size and sha256 (X-Linked-*); the storage request it led
	// to was cut, and the retries resumed with Range requests.
	require.Len(t, h.ranges, 7, "ranges asked: %q", h.ranges)
	assert.Equal(t, []string{"", ""}, h.ranges[:2])
	for _, i := range []int{2, 3, 4, 5, 6} {
		assert.True(t, strings.HasPrefix(h.ranges[i], "bytes="), "request %d resumes: %q", i, h.ranges)
	}
	// Five failed attempts, five waits; the 429's Retry-After (2 s) was honoured.
	require.Len(t, delays, 5)
	assert.GreaterOrEqual(t, delays[1], 2*time.Second, "Retry-After")
	for i, d := range delays {
		if i != 1 {
			assert.LessOrEqual(t, d, time.Second, "capped at MaxDelay")
			assert.GreaterOrEqual(t, d, 50*time.Millisecond, "at least half of MinDelay")
		}
	}
	assert.Equal(t, int64(3<<20), progress[len(progress)-1].Done)
	assert.Equal(t, int64(3<<20), progress[len(progress)-1].Total)
	for _, a := range h.auth {
		assert.True(t, a == "Bearer hf_secret" || a == "", "token sent as a bearer token: %q", a)
	}
}

// TestCorruptDownloadNeverTakesTheFinalName: a server that always flips a byte makes
// the download fail after its retries, with nothing under the final name.
func TestCorruptDownloadNeverTakesTheFinalName(t *testing.T) {
	h, srv := newFlakyHub(t, 200_000, corrupt, corrupt, corrupt, corrupt)
	var delays []time.Duration
	c := testClient(srv, &delays)
	c.Retries = 3
	c.SHA256 = h.sha()
	dir := t.TempDir()
	_, err := c.Download(context.Background(), ref, dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sha256 is")
	assert.Contains(t, err.Error(), "owner/repo:dir/model.gguf")
	assert.NoFileExists(t, filepath.Join(dir, "model.gguf"))
	assert.NoFileExists(t, filepath.Join(dir, "model.gguf.part"))
	assert.Len(t, delays, 3)

	// One corrupt answer then a good one: the retry starts from scratch and succeeds.
	h2, srv2 := newFlakyHub(t, 200_000, corrupt)
	c2 := testClient(srv2, &delays)
	c2.SHA256 = h2.sha()
	path, err := c2.Download(context.Background(), ref, t.TempDir())
	require.NoError(t, err)
	got, _ := os.ReadFile(path)
	assert.True(t, string(got) == string(h2.content))
}

func TestDownloadErrors(t *testing.T) {
	_, srv := newFlakyHub(t, 1000, forbidden)
	var delays []time.Duration
	c := testClient(srv, &delays)
	_, err := c.Download(context.Background(), ref, t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HF_TOKEN")
	assert.NotContains(t, err.Error(), "hf_secret", "the token is never shown")
	assert.Empty(t, delays, "403 is not retried")

	_, err = c.Download(context.Background(), Ref{Repo: "owner/other", File: "x.gguf"}, t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "404")

	_, srv = newFlakyHub(t, 1000, unavailable, unavailable, unavailable)
	c = testClient(srv, &delays)
	c.Retries = 2
	_, err = c.Download(context.Background(), ref, t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503")

	c.SHA256 = "abc"
	_, err = c.Download(context.Background(), ref, t.TempDir())
	require.Error(t, err)
}

// TestCancelledDownloadResumes: a cancelled download leaves a .part that the next
// run continues with a Range request.
func TestCancelledDownloadResumes(t *testing.T) {
	h, srv := newFlakyHub(t, 2<<20)
	var delays []time.Duration
	c := testClient(srv, &delays)
	ctx, cancel := context.WithCancel(context.Background())
	c.Progress = func(p Progress) {
		if p.Done > 0 && p.Done < p.Total {
			cancel()
		}
	}
	dir := t.TempDir()
	_, err := c.Download(ctx, ref, dir)
	require.ErrorIs(t, err, context.Canceled)
	assert.NoFileExists(t, filepath.Join(dir, "model.gguf"))
	st, err := os.Stat(filepath.Join(dir, "model.gguf.part"))
	require.NoError(t, err)
	require.Greater(t, st.Size(), int64(0))

	c.Progress = nil
	path, err := c.Download(context.Background(), ref, dir)
	require.NoError(t, err)
	got, _ := os.ReadFile(path)
	assert.True(t, string(got) == string(h.content))
	assert.Equal(t, fmt.Sprintf("bytes=%d-", st.Size()), h.ranges[len(h.ranges)-1])
}

func TestParseRef(t *testing.T) {
	r, err := ParseRef("owner/repo:model-q4_k.gguf")
	require.NoError(t, err)
	assert.Equal(t, Ref{Repo: "owner/repo", File: "model-q4_k.gguf"}, r)
	assert.Equal(t, "https://huggingface.co/owner/repo/resolve/main/model-q4_k.gguf", r.url(DefaultEndpoint))
	r, err = ParseRef("owner/repo@v1.0:sub dir/m.gguf")
	require.NoError(t, err)
	assert.Equal(t, "x/owner/repo/resolve/v1.0/sub%20dir/m.gguf", r.url("x/"))
	for _, bad := range []string{"owner/repo", "repo:file.gguf", "o/r/x:f", "o/r:", "o/r:../../etc/passwd", "o/r:/abs"} {
		_, err := ParseRef(bad)
		assert.Error(t, err, bad)
	}
}

func TestParseContentRangeAndRetryAfter(t *testing.T) {
	s, total, err := parseContentRange("bytes 100-199/1000")
	require.NoError(t, err)
	assert.Equal(t, []int64{100, 1000}, []int64{s, total})
	_, total, err = parseContentRange("bytes 5-9/*")
	require.NoError(t, err)
	assert.Equal(t, int64(-1), total)
	_, _, err = parseContentRange("items 1-2/3")
	assert.Error(t, err)
	assert.Equal(t, 7*time.Second, retryAfter("7"))
	assert.Equal(t, time.Duration(0), retryAfter("soon"))
	assert.InDelta(t, float64(10*time.Second), float64(retryAfter(time.Now().Add(10*time.Second).UTC().Format(http.TimeFormat))), float64(1500*time.Millisecond))
}
