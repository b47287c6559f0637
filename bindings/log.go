package bindings

/*
#include "llama.h"

// goLlamaLog is the exported Go trampoline in callbacks.go.
extern void goLlamaLog(enum ggml_log_level level, char *text, void *user_data);
*/
import "C"

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// maxPendingLog bounds the bytes kept while waiting for the newline that ends a message;
// llama.cpp prints progress dots without one, and those must not grow without limit.
const maxPendingLog = 4096

// logSink turns llama.cpp's log callback, which delivers fragments of lines from any
// thread, into one slog record per line.
type logSink struct {
	logger atomic.Pointer[slog.Logger] // nil means slog.Default()

	mu      sync.Mutex
	pending []byte     // text of the current line so far
	level   slog.Level // level of the current line, kept for GGML_LOG_LEVEL_CONT fragments
	// The newest error line and how many error lines came before it, so that a failed
	// call can say why in its error instead of sending the user to the log.
	lastErrs []string // at most maxErrLines, oldest first
	errCount uint64
}

// maxErrLines is how many of libllama's error lines a failed call quotes: its loader
// logs the specific reason first, then a generic "failed to load model".
const maxErrLines = 2

// errorMark returns the count of error lines logged so far.
func (s *logSink) errorMark() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errCount
}

// errorSince returns the newest error lines (up to maxErrLines) logged after mark,
// joined with "; ", or "".
func (s *logSink) errorSince(mark uint64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(s.errCount-mark, uint64(len(s.lastErrs)))
	return strings.Join(s.lastErrs[uint64(len(s.lastErrs))-n:], "; ")
}

// why is ": " and the newest error line libllama logged since mark, or hint when none:
// the reason a C call failed, for its Go error.
func (s *logSink) why(mark uint64, hint string) string {
	if e := s.errorSince(mark); e != "" {
		return ": libllama says " + strconv.Quote(e)
	}
	return hint
}

// sink is package-level because llama_log_set installs one process-wide callback for
// llama.cpp and ggml together; there is no per-model or per-context log to hang it on.
var sink logSink

// SetLogger sends llama.cpp's and ggml's log to l from now on; nil means slog.Default()
// (the initial setting). To silence llama.cpp, pass slog.New(slog.DiscardHandler).
// Records carry the attribute lib=llama.cpp; DEBUG, INFO, WARN and ERROR map to the slog
// levels of the same names.
func SetLogger(l *slog.Logger) {
	sink.logger.Store(l)
	initBackend()
}

// installLogSink points llama.cpp's log at the trampoline; initBackend calls it once,
// before llama_backend_init, so no start-up message escapes to stderr.
func installLogSink() {
	C.llama_log_set(C.ggml_log_callback(C.goLlamaLog), nil)
}

// ggml's log levels (enum ggml_log_level) as Go constants, usable from tests.
const (
	ggmlLogNone  = int(C.GGML_LOG_LEVEL_NONE)
	ggmlLogDebug = int(C.GGML_LOG_LEVEL_DEBUG)
	ggmlLogInfo  = int(C.GGML_LOG_LEVEL_INFO)
	ggmlLogWarn  = int(C.GGML_LOG_LEVEL_WARN)
	ggmlLogError = int(C.GGML_LOG_LEVEL_ERROR)
	ggmlLogCont  = int(C.GGML_LOG_LEVEL_CONT)
)

// slogLevel maps a ggml log level to slog; ok is false for GGML_LOG_LEVEL_CONT, which
// continues the previous message at its level.
func slogLevel(level int) (lvl slog.Level, ok bool) {
	switch level {
	case ggmlLogDebug:
		return slog.LevelDebug, true
	case ggmlLogWarn:
		return slog.LevelWarn, true
	case ggmlLogError:
		return slog.LevelError, true
	case ggmlLogCont:
		return 0, false
	default: // ggmlLogInfo and ggmlLogNone
		return slog.LevelInfo, true
	}
}

// logLine is one finished line waiting to be handed to slog.
type logLine struct {
	level slog.Level
	text  string
}

// write appends a fragment and emits every line it completes.
func (s *logSink) write(level int, text []byte) {
	var lines []logLine
	s.mu.Lock()
	if lvl, ok := slogLevel(level); ok {
		if len(s.pending) > 0 && lvl != s.level {
			// A new message at another level while a line is open: finish the old one.
			lines = append(lines, logLine{s.level, string(s.pending)})
			s.pending = s.pending[:0]
		}
		s.level = lvl
	}
	s.pending = append(s.pending, text...)
	for {
		i := bytes.IndexByte(s.pending, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, logLine{s.level, string(s.pending[:i])})
		if s.level >= slog.LevelError {
			s.lastErrs = append(s.lastErrs, strings.TrimSpace(string(s.pending[:i])))
			if len(s.lastErrs) > maxErrLines {
				s.lastErrs = s.lastErrs[1:]
			}
			s.errCount++
		}
		s.pending = s.pending[i+1:]
	}
	if len(s.pending) > maxPendingLog {
		lines = append(lines, logLine{s.level, string(s.pending)})
		s.pending = nil
	}
	if len(s.pending) == 0 {
		s.pending = nil // drop the consumed prefix's backing array
	}
	s.mu.Unlock()

	// Log outside the lock: a handler that is slow, or that itself logs, must not stall
	// llama.cpp's other threads.
	logger := s.logger.Load()
	if logger == nil {
		logger = slog.Default()
	}
	for _, l := range lines {
		msg := string(bytes.TrimRight([]byte(l.text), "\r "))
		if msg == "" {
			continue
		}
		logger.Log(context.Background(), l.level, msg, slog.String("lib", "llama.cpp"))
	}
}
