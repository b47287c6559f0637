package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ecotune/ecotune/data"
)

// errEnough ends a scan once the preview has its examples.
var errEnough = errors.New("enough")

// preview renders a file's first n examples as a job would train on them: prepared by
// `ecotune prepare` with the base's template (once per file, kept beside it), each split
// into segments marked with whether the loss covers them.
func (m *Manager) preview(ctx context.Context, f File, n int) ([]PreviewExample, error) {
	dir := filepath.Join(m.opts.DataDir, "files", f.ID+".prepared")
	if _, err := os.Stat(filepath.Join(dir, data.ManifestName)); err != nil {
		tmp, err := os.MkdirTemp(filepath.Join(m.opts.DataDir, "files"), ".preview-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		if err := m.runStep(ctx, m.prepareArgs(f.path, tmp, 0)); err != nil {
			return nil, fmt.Errorf("file %s (%s): %w", f.ID, f.Filename, err)
		}
		if err := os.Rename(tmp, dir); err != nil && !os.IsExist(err) {
			if _, statErr := os.Stat(dir); statErr != nil { // another request may have won the race
				return nil, err
			}
		}
	}
	var out []PreviewExample
	err := data.ScanPrepared(filepath.Join(dir, "train.jsonl"), func(ex data.PreparedExample) error {
		var p PreviewExample
		for _, s := range ex.Segments {
			p.Segments = append(p.Segments, PreviewSegment{Text: s.Text, Trained: s.Train})
		}
		out = append(out, p)
		if len(out) == n {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return out, nil
}
