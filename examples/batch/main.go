// Command batch runs every prompt of a JSONL file through serve.Engine, the scheduler
// `ecotune serve` runs, used here without HTTP. Requests are submitted concurrently, so
// the engine decodes them together (continuous batching), each with its own adapter.
//
//	go run ./examples/batch -m base.gguf --adapter climate=run/adapter.gguf -o out.jsonl prompts.jsonl
//
// Each input line is an object:
//
//	{"id": "q1", "prompt": "...", "adapter": "climate", "max_tokens": 64}
//
// id (any JSON value) and prompt are required; adapter names one given with --adapter
// (absent: the base model); max_tokens defaults to --max-tokens. Each output line, in
// input order:
//
//	{"id": "q1", "text": "...", "finish_reason": "stop", "prompt_tokens": 12, "completion_tokens": 40}
//
// The whole input is checked before the model loads: a bad line stops the run with
// "FILE:LINE: what is wrong" and exit status 1. With -o, the output appears only when
// every prompt has its result.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/serve"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(1)
	}
}

// errUsage is a command-line mistake the flag package has already explained.
var errUsage = errors.New("usage")

// options are the command line's settings.
type options struct {
	model     string
	adapters  map[string]string // name → path
	input     string
	output    string // "" is stdout
	parallel  int
	jobs      int
	maxTokens int
	temp      float64
	ctx       int
	threads   int
	verbose   bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{adapters: map[string]string{}}
	fs := flag.NewFlagSet("batch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: batch -m BASE.gguf [--adapter NAME=PATH]... [-o OUT.jsonl] IN.jsonl")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.model, "m", "", "base model GGUF (required)")
	fs.Func("adapter", "NAME=PATH: a LoRA adapter GGUF that lines may name (repeatable)", func(s string) error {
		name, path, ok := strings.Cut(s, "=")
		if !ok || name == "" || path == "" {
			return fmt.Errorf("want NAME=PATH, got %q", s)
		}
		if _, dup := o.adapters[name]; dup {
			return fmt.Errorf("adapter %s is given twice", name)
		}
		o.adapters[name] = path
		return nil
	})
	fs.StringVar(&o.output, "o", "", "write the results to this file instead of stdout")
	fs.IntVar(&o.parallel, "parallel", 4, "sequences the engine decodes together")
	fs.IntVar(&o.jobs, "jobs", 16, "requests submitted at once (those beyond --parallel wait in the engine's queue)")
	fs.IntVar(&o.maxTokens, "max-tokens", 128, "most tokens per result, unless a line sets max_tokens")
	fs.Float64Var(&o.temp, "temp", 0, "sampling temperature; 0 is greedy")
	fs.IntVar(&o.ctx, "ctx", 2048, "context tokens of each sequence")
	fs.IntVar(&o.threads, "threads", 0, "CPU threads (0: one per CPU)")
	fs.BoolVar(&o.verbose, "v", false, "show llama.cpp's log")
	if err := fs.Parse(args); err != nil {
		return o, errUsage
	}
	if o.model == "" || fs.NArg() != 1 || o.jobs < 1 {
		fs.Usage()
		return o, errUsage
	}
	o.input = fs.Arg(0)
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	// Checking the input first means a typo on line 9000 costs nothing but this read.
	items, err := readInput(o.input, o.adapters)
	if err != nil {
		return err
	}

	level := slog.LevelError // llama.cpp reports every tensor it loads at INFO
	if o.verbose {
		level = slog.LevelInfo
	}
	bindings.SetLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
	engine, err := serve.Open(o.model, serve.Options{Parallel: o.parallel, Ctx: o.ctx, Threads: o.threads, Queue: o.jobs})
	if err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	defer engine.Close()
	for name, path := range o.adapters {
		if _, err := engine.LoadAdapter(name, path, 1); err != nil {
			return fmt.Errorf("batch: adapter %s: %w", name, err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	results, err := generateAll(ctx, engine, items, o)
	if err != nil {
		return err
	}
	return writeResults(o.output, stdout, results)
}
