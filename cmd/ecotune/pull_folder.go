package main

import (
	"context"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"slices"

	"github.com/ecotune/ecotune/convert"
	"github.com/ecotune/ecotune/hub"
)

// pullFolder downloads the checkpoint files of a repository into out/NAME,
// one after another, each with the downloader's resume and verification.
func pullFolder(ctx context.Context, cl *hub.Client, repo hub.Ref, out string, quiet bool, w, errw io.Writer) error {
	files, err := cl.ListFiles(ctx, repo)
	if err != nil {
		return err
	}
	var want []string
	for _, f := range files {
		if convert.CheckpointFile(f) {
			want = append(want, f)
		}
	}
	slices.Sort(want)
	if !slices.Contains(want, convert.ConfigFile) || !slices.ContainsFunc(want, func(f string) bool { return path.Ext(f) == ".safetensors" }) {
		return fmt.Errorf("pull: %s has no config.json and *.safetensors at its top level, so it is not a checkpoint folder; name one file with %s:FILE", repo.Repo, repo.Repo)
	}
	dir := filepath.Join(out, path.Base(repo.Repo))
	for i, f := range want {
		ref := repo
		ref.File = f
		if !quiet {
			fmt.Fprintf(errw, "[%d/%d] %s\n", i+1, len(want), f)
		}
		if _, err := cl.Download(ctx, ref, dir); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "wrote %s (%d files); use it as --model, or make a GGUF with: ecotune convert %s -o MODEL.gguf\n", dir, len(want), dir)
	return nil
}
