//go:build cgo

package ggml

/*
#include "ggml.h"
extern void ecotuneGGMLLog(int level, char * text, void * user);
static void ecotune_ggml_log(enum ggml_log_level level, const char * text, void * user) {
	ecotuneGGMLLog((int)level, (char *)text, user);
}
static void ecotune_ggml_log_install(void) { ggml_log_set(ecotune_ggml_log, NULL); }
static void ecotune_ggml_log_restore(void) { ggml_log_set(NULL, NULL); }
*/
import "C"

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
)

// ggml's log callback is process-wide in C, so the Go side that receives it is too:
// one logger, swapped atomically, and a partial line buffer for messages ggml sends in
// pieces (GGML_LOG_LEVEL_CONT).
var (
	logger   atomic.Pointer[slog.Logger]
	logMu    sync.Mutex
	logLine  strings.Builder
	logLevel slog.Level
	logOnce  sync.Once
)

// SetLogger routes ggml's log to l (nil: slog.Default()). llama.cpp's own log is set by
// the bindings package; both may point to the same logger.
func SetLogger(l *slog.Logger) {
	logger.Store(l)
	logOnce.Do(func() { C.ecotune_ggml_log_install() })
}

//export ecotuneGGMLLog
func ecotuneGGMLLog(level C.int, text *C.char, _ *C.void) {
	msg := C.GoString(text)
	logMu.Lock()
	defer logMu.Unlock()
	if level != C.GGML_LOG_LEVEL_CONT {
		logLevel = slogLevel(level)
	}
	logLine.WriteString(msg)
	if !strings.HasSuffix(msg, "\n") {
		return
	}
	line := strings.TrimRight(logLine.String(), "\n")
	logLine.Reset()
	l := logger.Load()
	if l == nil {
		l = slog.Default()
	}
	l.Log(context.Background(), logLevel, line, "source", "ggml")
}

func slogLevel(level C.int) slog.Level {
	switch level {
	case C.GGML_LOG_LEVEL_DEBUG:
		return slog.LevelDebug
	case C.GGML_LOG_LEVEL_WARN:
		return slog.LevelWarn
	case C.GGML_LOG_LEVEL_ERROR:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
