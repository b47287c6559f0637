package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// retryable marks a failed attempt worth repeating; after is the delay the server
// asked for (Retry-After), 0 if none.
type retryable struct {
	err   error
	after time.Duration
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// download is the state one Download carries across attempts.
type download struct {
	c      *Client
	ref    Ref
	part   string
	sha    string // expected digest, lower-case hex; "" unknown
	total  int64  // expected size; -1 unknown
	client *http.Client
	linked http.Header // headers of the hub's redirect answer (X-Linked-*)
}

// Download fetches ref into dir under the file's base name and returns its path. An
// existing DIR/NAME.part from an interrupted run is continued. The file appears under
// its final name only when complete and, where a digest is known, verified.
func (c *Client) Download(ctx context.Context, ref Ref, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	final := filepath.Join(dir, path.Base(ref.File))
	d := &download{c: c, ref: ref, part: final + ".part", sha: strings.ToLower(c.SHA256), total: -1}
	if d.sha != "" && !isSHA256(d.sha) {
		return "", fmt.Errorf("hub: expected sha256 %q is not 64 hex digits", c.SHA256)
	}
	base := c.HTTP
	if base == nil {
		base = http.DefaultClient
	}
	cl := *base
	cl.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		// The hub answers the resolve URL with a redirect to storage whose headers
		// carry the LFS file's sha256 and size; keep them.
		if req.Response != nil && d.linked == nil {
			d.linked = req.Response.Header.Clone()
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	d.client = &cl

	retries := c.Retries
	if retries == 0 {
		retries = DefaultRetries
	}
	for attempt := 1; ; attempt++ {
		err := d.attempt(ctx, attempt)
		if err == nil {
			err = d.verify()
		}
		if err == nil {
			break
		}
		var r *retryable
		if !errors.As(err, &r) || attempt > retries || ctx.Err() != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return "", fmt.Errorf("hub: %s: %w", ref, err)
		}
		delay := c.backoff(attempt, r.after)
		if c.Log != nil {
			c.Log("hub: %s: %v; retry %d of %d in %s", ref, err, attempt, retries, delay.Round(time.Millisecond))
		}
		if err := c.wait(ctx, delay); err != nil {
			return "", fmt.Errorf("hub: %s: %w", ref, err)
		}
	}
	if err := os.Rename(d.part, final); err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	return final, nil
}

// attempt makes one request and appends what arrives to the .part file.
func (d *download) attempt(ctx context.Context, n int) error {
	off := int64(0)
	if st, err := os.Stat(d.part); err == nil {
		off = st.Size()
	}
	if d.total >= 0 && off > d.total {
		off = 0 // longer than the file: not a prefix of it
	}
	if d.total >= 0 && off == d.total {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.ref.url(d.c.endpoint()), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "ecotune")
	if d.c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+d.c.Token)
	}
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return &retryable{err: err}
	}
	defer resp.Body.Close()
	h := resp.Header
	if d.linked != nil {
		h = d.linked
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		off = 0 // the server sent the whole file: start again
	case resp.StatusCode == http.StatusPartialContent:
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || start != off {
			_ = os.Remove(d.part)
			return &retryable{err: fmt.Errorf("asked for bytes from %d, got Content-Range %q", off, resp.Header.Get("Content-Range"))}
		}
		if total >= 0 {
			d.setTotal(total)
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		_ = os.Remove(d.part)
		return &retryable{err: fmt.Errorf("the server refused to resume at byte %d", off)}
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return &retryable{err: fmt.Errorf("%s", resp.Status), after: retryAfter(resp.Header.Get("Retry-After"))}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: the repository may be gated or private: set HF_TOKEN (in the environment or .env)", resp.Status)
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: no such repository, revision or file", resp.Status)
	default:
		return fmt.Errorf("unexpected answer %s", resp.Status)
	}
	if d.sha == "" {
		for _, k := range []string{"X-Linked-Etag", "ETag"} {
			if v := strings.ToLower(strings.Trim(strings.TrimPrefix(h.Get(k), "W/"), `"`)); isSHA256(v) {
				d.sha = v
				break
			}
		}
	}
	if resp.StatusCode == http.StatusOK {
		if v, err := strconv.ParseInt(h.Get("X-Linked-Size"), 10, 64); err == nil && v >= 0 {
			d.setTotal(v)
		} else if resp.ContentLength >= 0 {
			d.setTotal(resp.ContentLength)
		}
	}

	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if off == 0 {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(d.part, flags, 0o644)
	if err != nil {
		return err
	}
	done, copyErr := d.copy(ctx, f, resp.Body, off, n)
	if err := f.Sync(); err != nil && copyErr == nil {
		copyErr = err
	}
	if err := f.Close(); err != nil && copyErr == nil {
		copyErr = err
	}
	switch {
	case copyErr != nil && ctx.Err() != nil:
		return ctx.Err()
	case copyErr != nil:
		return &retryable{err: fmt.Errorf("connection lost after %d bytes: %w", done, copyErr)}
	case d.total >= 0 && done < d.total:
		return &retryable{err: fmt.Errorf("the server sent %d of %d bytes", done, d.total)}
	case d.total >= 0 && done > d.total:
		_ = os.Remove(d.part)
		return &retryable{err: fmt.Errorf("the server sent %d bytes, more than the %d it announced", done, d.total)}
	}
	return nil
}

// setTotal records the expected size; a change means the file changed on the server,
// so what is on disk no longer belongs to it.
func (d *download) setTotal(t int64) {
	if d.total >= 0 && d.total != t {
		_ = os.Remove(d.part)
	}
	d.total = t
}

// copy appends body to f, reporting progress, until the body ends or ctx is
// cancelled; it returns the bytes now on disk.
func (d *download) copy(ctx context.Context, f *os.File, body io.Reader, off int64, attempt int) (int64, error) {
	buf := make([]byte, 256<<10)
	done := off
	last := time.Time{}
	for {
		// The transport may still hold data read before a cancellation; stop anyway.
		if err := ctx.Err(); err != nil {
			return done, err
		}
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := f.Write(buf[:n]); werr != nil {
				return done, werr
			}
			done += int64(n)
			if d.c.Progress != nil && time.Since(last) > 100*time.Millisecond {
				d.c.Progress(Progress{Done: done, Total: d.total, Attempt: attempt})
				last = time.Now()
			}
		}
		if err == io.EOF {
			if d.c.Progress != nil {
				d.c.Progress(Progress{Done: done, Total: d.total, Attempt: attempt})
			}
			return done, nil
		}
		if err != nil {
			return done, err
		}
	}
}

// verify checks the complete .part against the expected digest; a mismatch removes it
// (the bytes are wrong somewhere, so resuming cannot help) and is worth a fresh try.
func (d *download) verify() error {
	if d.sha == "" {
		return nil
	}
	f, err := os.Open(d.part)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.sha {
		_ = os.Remove(d.part)
		return &retryable{err: fmt.Errorf("sha256 is %s, expected %s; the download was discarded", got, d.sha)}
	}
	return nil
}

func (c *Client) endpoint() string {
	if c.Endpoint == "" {
		return DefaultEndpoint
	}
	return c.Endpoint
}

// backoff is the delay before retry number attempt: exponential from MinDelay, capped
// at MaxDelay, with "equal jitter" (half fixed, half random) so many clients that
// failed together do not return together; a server's Retry-After wins when longer.
func (c *Client) backoff(attempt int, after time.Duration) time.Duration {
	lo, hi := c.MinDelay, c.MaxDelay
	if lo <= 0 {
		lo = DefaultMinDelay
	}
	if hi <= 0 {
		hi = DefaultMaxDelay
	}
	d := lo << min(attempt-1, 30)
	if d > hi || d <= 0 {
		d = hi
	}
	d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	if after > d {
		d = min(after, 5*hi)
	}
	return d
}

func (c *Client) wait(ctx context.Context, d time.Duration) error {
	if c.sleep != nil {
		c.sleep(d)
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*", returned as -1).
func parseContentRange(s string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	rng, tot, ok := strings.Cut(rest, "/")
	a, _, ok2 := strings.Cut(rng, "-")
	if !ok || !ok2 {
		return 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	if start, err = strconv.ParseInt(a, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	if tot == "*" {
		return start, -1, nil
	}
	if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	return start, total, nil
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
