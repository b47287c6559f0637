// Command ecotune fine-tunes, evaluates and runs GGUF language models. Each subcommand
// is a thin layer over a package a Go program can import directly.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// Exit codes: 0 success, 1 error, 2 usage.
const (
	exitError = 1
	exitUsage = 2
)

// usageError marks errors in how the command was called (exit code 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func newApp(stdout, stderr io.Writer, notFound *bool) *cli.App {
	cmds := commands()
	for _, c := range cmds {
		markUsageErrors(c)
	}
	return &cli.App{
		Name:                 "ecotune",
		Usage:                "fine-tune GGUF language models with LoRA/QLoRA on ggml",
		Version:              version,
		EnableBashCompletion: true,
		Writer:               stdout,
		ErrWriter:            stderr,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "verbose", Usage: "log llama.cpp and ggml messages"},
		},
		Before: func(c *cli.Context) error {
			var h slog.Handler = libLogFilter{slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError})}
			if c.Bool("verbose") {
				h = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
			}
			slog.SetDefault(slog.New(h))
			if err := loadDotEnv(".env"); err != nil {
				return usageError{err}
			}
			return nil
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error { return usageError{err} },
		Commands:     cmds,
		CommandNotFound: func(c *cli.Context, name string) {
			// urfave/cli also lands here when a subcommand misses a required flag and
			// tries to show help for its first argument; that error is reported anyway.
			if len(c.Lineage()) > 2 {
				return
			}
			fmt.Fprintf(stderr, "ecotune: no command %q\nhint: run `ecotune --help` for the list\n", name)
			*notFound = true
		},
		ExitErrHandler: func(*cli.Context, error) {
			// main reports errors once, with the exit code they deserve.
		},
	}
}

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	notFound := false
	app := newApp(stdout, stderr, &notFound)
	err := app.Run(flagsFirst(app, args))
	if notFound {
		return exitUsage
	}
	if err == nil {
		return 0
	}
	var ue usageError
	// urfave/cli's missing-required-flag error has no exported type.
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "Required flag") {
		fmt.Fprintf(stderr, "ecotune: %v\nhint: run `ecotune --help` or `ecotune COMMAND --help`\n", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "ecotune: %v\n", err)
	if h := hintFor(err); h != "" {
		fmt.Fprintf(stderr, "hint: %s\n", h)
	}
	return exitError
}

// markUsageErrors makes flag errors of c and its subcommands exit with code 2.
func markUsageErrors(c *cli.Command) {
	c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
	for _, s := range c.Subcommands {
		markUsageErrors(s)
	}
}

// hintFor suggests a next step for errors that have an obvious one.
func hintFor(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "check the path; relative paths are taken from the current directory"
	case errors.Is(err, os.ErrPermission):
		return "check the file's permissions"
	}
	return ""
}

// libLogFilter drops the log records of llama.cpp and ggml below --verbose: the
// bindings put libllama's reason for a failure into the returned error, so printing
// the log line too would make one failure two messages.
type libLogFilter struct{ slog.Handler }

func (h libLogFilter) Handle(ctx context.Context, r slog.Record) error {
	lib := false
	r.Attrs(func(a slog.Attr) bool {
		lib = (a.Key == "lib" && a.Value.String() == "llama.cpp") || (a.Key == "source" && a.Value.String() == "ggml")
		return !lib
	})
	if lib {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h libLogFilter) WithAttrs(as []slog.Attr) slog.Handler {
	return libLogFilter{h.Handler.WithAttrs(as)}
}

func (h libLogFilter) WithGroup(name string) slog.Handler {
	return libLogFilter{h.Handler.WithGroup(name)}
}
