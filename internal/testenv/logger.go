package testenv

import (
	"log/slog"
	"os"
)

// LibLogger is the logger a package's TestMain gives llama.cpp's log: to stderr at
// quiet, so that load chatter stays out of the test output, or at Info under -v.
func LibLogger(quiet slog.Level) *slog.Logger {
	level := quiet
	for _, a := range os.Args {
		if a == "-test.v=true" || a == "-test.v" {
			level = slog.LevelInfo
		}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
