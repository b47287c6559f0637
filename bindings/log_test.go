//go:build cgo

package bindings

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a slog.Handler that keeps every record.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

var _ slog.Handler = (*recorder)(nil)

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// lines returns the recorded messages at level, or at every level when all is true.
func (r *recorder) lines(level slog.Level, all bool) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.records {
		if all || rec.Level == level {
			out = append(out, rec.Message)
		}
	}
	return out
}

func TestLogGoesToSlog(t *testing.T) {
	requireStories(t)
	rec := &recorder{}
	SetLogger(slog.New(rec))
	t.Cleanup(func() { SetLogger(testLogger) })

	m, err := LoadModel(storiesPath, ModelOptions{VocabOnly: true})
	require.NoError(t, err)
	require.NoError(t, m.Close())

	info := strings.Join(rec.lines(slog.LevelInfo, false), "\n")
	assert.Contains(t, info, "llama_model_loader: loaded meta data", "INFO lines arrive at slog.LevelInfo")
	assert.Contains(t, strings.Join(rec.lines(slog.LevelWarn, false), "\n"), "bad special token", "WARN lines arrive at slog.LevelWarn")
	for _, l := range rec.lines(0, true) {
		assert.NotContains(t, l, "\n", "one record per line")
		assert.NotEmpty(t, l)
	}
	rec.mu.Lock()
	var lib string
	rec.records[0].Attrs(func(a slog.Attr) bool { lib = a.Value.String(); return a.Key != "lib" })
	rec.mu.Unlock()
	assert.Equal(t, "llama.cpp", lib)
}

func TestLogSinkFragments(t *testing.T) {
	rec := &recorder{}
	var s logSink
	s.logger.Store(slog.New(rec))

	s.write(ggmlLogInfo, []byte("loading"))
	s.write(ggmlLogCont, []byte("..."))
	s.write(ggmlLogCont, []byte("done\nnext "))
	s.write(ggmlLogCont, []byte("line\n"))
	s.write(ggmlLogError, []byte("bad thing\n\n"))
	s.write(ggmlLogDebug, []byte("dangling"))
	s.write(ggmlLogWarn, []byte("careful\r\n"))

	assert.Equal(t, []string{"loading...done", "next line"}, rec.lines(slog.LevelInfo, false))
	assert.Equal(t, []string{"bad thing"}, rec.lines(slog.LevelError, false))
	assert.Equal(t, []string{"dangling"}, rec.lines(slog.LevelDebug, false), "a level change ends an open line")
	assert.Equal(t, []string{"careful"}, rec.lines(slog.LevelWarn, false))

	long := strings.Repeat(".", maxPendingLog+1)
	s.write(ggmlLogInfo, []byte(long))
	assert.Contains(t, rec.lines(slog.LevelInfo, false), long, "unterminated text is bounded")
}
