package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// ParseRepo reads "owner/repo" or "owner/repo@revision": a whole repository,
// no file named.
func ParseRepo(s string) (Ref, error) {
	var r Ref
	r.Repo, r.Revision, _ = strings.Cut(s, "@")
	owner, name, ok := strings.Cut(r.Repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") || strings.Contains(s, ":") {
		return Ref{}, fmt.Errorf("hub: %q: want owner/repo[@revision] for a checkpoint folder, or owner/repo:file.gguf for one file", s)
	}
	return r, nil
}

// ListFiles returns the paths of every file of repository ref.Repo at
// ref.Revision ("main" if empty), from the hub's model API
// (GET /api/models/OWNER/NAME/revision/REV, its "siblings").
func (c *Client) ListFiles(ctx context.Context, ref Ref) ([]string, error) {
	rev := ref.Revision
	if rev == "" {
		rev = "main"
	}
	u := strings.TrimRight(c.endpoint(), "/") + "/api/models/" + ref.Repo + "/revision/" + url.PathEscape(rev)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("hub: listing %s: %w", ref.Repo, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, fmt.Errorf("hub: listing %s: %s (a gated or private repository needs HF_TOKEN)", ref.Repo, resp.Status)
	case http.StatusNotFound:
		return nil, fmt.Errorf("hub: listing %s: no such repository or revision %q", ref.Repo, rev)
	default:
		return nil, fmt.Errorf("hub: listing %s: %s", ref.Repo, resp.Status)
	}
	var info struct {
		Siblings []struct {
			Name string `json:"rfilename"`
		} `json:"siblings"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&info); err != nil {
		return nil, fmt.Errorf("hub: listing %s: %v", ref.Repo, err)
	}
	var files []string
	for _, s := range info.Siblings {
		if s.Name != "" && !strings.HasPrefix(s.Name, "/") && !strings.Contains("/"+s.Name+"/", "/../") {
			files = append(files, s.Name)
		}
	}
	return files, nil
}
