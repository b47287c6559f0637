// Package hub downloads model files from a Hugging Face style hub: resumable (a
// .part file continued with HTTP Range requests), checked against the sha256 the hub
// publishes for LFS files (or one the caller gives), retried with exponential backoff
// and jitter on dropped connections, 429 and 5xx answers, and renamed into place only
// once complete and verified, so the final name never holds a partial or corrupt file.
//
//	c := hub.Client{Token: os.Getenv("HF_TOKEN")}
//	path, err := c.Download(ctx, hub.Ref{Repo: "owner/repo", File: "model-q4_k.gguf"}, "models")
package hub

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultEndpoint is the hub used when Client.Endpoint is empty (HF_ENDPOINT overrides
// it in the CLI).
const DefaultEndpoint = "https://huggingface.co"

// Retry defaults, used where a Client field is zero.
const (
	DefaultRetries  = 6
	DefaultMinDelay = 500 * time.Millisecond
	DefaultMaxDelay = 30 * time.Second
)

// Ref names one file in a hub repository.
type Ref struct {
	Repo     string // owner/name
	File     string // path inside the repository
	Revision string // branch, tag or commit; "main" if empty
}

// ParseRef reads "owner/repo:file.gguf" or "owner/repo@revision:file.gguf".
func ParseRef(s string) (Ref, error) {
	repo, file, ok := strings.Cut(s, ":")
	if !ok || file == "" {
		return Ref{}, fmt.Errorf("hub: %q: want owner/repo:file.gguf (optionally owner/repo@revision:file.gguf)", s)
	}
	var r Ref
	r.Repo, r.Revision, _ = strings.Cut(repo, "@")
	r.File = file
	owner, name, ok := strings.Cut(r.Repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return Ref{}, fmt.Errorf("hub: %q: the repository must be owner/name", s)
	}
	if strings.HasPrefix(file, "/") || strings.Contains("/"+file+"/", "/../") {
		return Ref{}, fmt.Errorf("hub: %q: the file must be a relative path inside the repository", s)
	}
	return r, nil
}

func (r Ref) String() string {
	s := r.Repo
	if r.Revision != "" {
		s += "@" + r.Revision
	}
	return s + ":" + r.File
}

// url is the file's resolve address on endpoint.
func (r Ref) url(endpoint string) string {
	rev := r.Revision
	if rev == "" {
		rev = "main"
	}
	parts := strings.Split(r.File, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.TrimRight(endpoint, "/") + "/" + r.Repo + "/resolve/" + url.PathEscape(rev) + "/" + strings.Join(parts, "/")
}

// Progress reports a download's state.
type Progress struct {
	Done, Total int64 // bytes on disk, expected size (-1 unknown)
	Attempt     int   // 1 for the first request
}

// Client downloads files. The zero value works against DefaultEndpoint without a token.
type Client struct {
	Endpoint string       // DefaultEndpoint if empty
	Token    string       // sent as a bearer token; never logged
	HTTP     *http.Client // http.DefaultClient if nil
	Retries  int          // attempts after the first; DefaultRetries if 0, <0 none
	MinDelay time.Duration
	MaxDelay time.Duration
	// SHA256, if set, is the expected hex digest; otherwise the hub's X-Linked-Etag
	// (or an ETag that is a sha256) is used, and without either nothing is checked.
	SHA256 string
	// Progress, if set, is called as bytes arrive (at most a few times a second).
	Progress func(Progress)
	// Log, if set, receives one line per retry.
	Log func(format string, args ...any)
	// sleep waits between attempts; tests replace it.
	sleep func(time.Duration)
}
