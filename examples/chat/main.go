// Command chat is a chat REPL over serve.Engine, the scheduler `ecotune serve` runs, used
// here without HTTP: it loads a base model and optional LoRA adapters, keeps the
// conversation, formats it with the model's chat template and streams each reply.
//
//	go run ./examples/chat -m base.gguf --adapter climate=run/adapter.gguf
//
// Each line read from stdin is a user turn. Two commands change course:
//
//	/use NAME   answer with adapter NAME from now on (/use alone: the base model)
//	/reset      forget the conversation
//
// Replies go to stdout, everything else to stderr. Ctrl-C during a reply stops that reply
// and returns to the prompt; Ctrl-C at the prompt (or end of input) exits.
package main

import (
	"bufio"
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
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

// options are the command line's settings.
type options struct {
	model     string
	adapters  []adapterFlag
	system    string
	temp      float64
	maxTokens int
	ctx       int
	threads   int
	verbose   bool
}

// adapterFlag is one --adapter NAME=PATH.
type adapterFlag struct{ name, path string }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.model, "m", "", "base model GGUF (required)")
	fs.Func("adapter", "NAME=PATH: a LoRA adapter GGUF (repeatable); the first one answers until /use says otherwise", func(s string) error {
		name, path, ok := strings.Cut(s, "=")
		if !ok || name == "" || path == "" {
			return fmt.Errorf("want NAME=PATH, got %q", s)
		}
		o.adapters = append(o.adapters, adapterFlag{name, path})
		return nil
	})
	fs.StringVar(&o.system, "system", "", "a system message to start the conversation with")
	fs.Float64Var(&o.temp, "temp", 0, "sampling temperature; 0 is greedy, so the same input gives the same replies")
	fs.IntVar(&o.maxTokens, "max-tokens", 256, "most tokens in one reply")
	fs.IntVar(&o.ctx, "ctx", 2048, "context tokens: the whole conversation must fit")
	fs.IntVar(&o.threads, "threads", 0, "CPU threads (0: one per CPU)")
	fs.BoolVar(&o.verbose, "v", false, "show llama.cpp's log")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.model == "" || fs.NArg() > 0 {
		fs.Usage()
		return o, errors.New("give the model with -m and no other arguments")
	}
	return o, nil
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelError // llama.cpp reports every tensor it loads at INFO
	if o.verbose {
		level = slog.LevelInfo
	}
	bindings.SetLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))

	// One conversation decodes one sequence at a time, so one slot is enough; a program
	// serving many users would raise Parallel and call Submit from many goroutines.
	engine, err := serve.Open(o.model, serve.Options{Parallel: 1, Ctx: o.ctx, Threads: o.threads})
	if err != nil {
		return err
	}
	defer engine.Close()
	if engine.Model().ChatTemplate() == "" {
		return fmt.Errorf("%s has no chat template to format the conversation with (tokenizer.chat_template)", o.model)
	}
	for _, a := range o.adapters {
		if _, err := engine.LoadAdapter(a.name, a.path, 1); err != nil {
			return fmt.Errorf("adapter %s: %w", a.name, err)
		}
	}

	c := &chat{engine: engine, opts: o, out: stdout, log: stderr}
	if len(o.adapters) > 0 {
		c.adapter = o.adapters[0].name
	}
	c.reset()
	in := bufio.NewScanner(stdin)
	in.Buffer(nil, 1<<20)
	for {
		fmt.Fprintf(stderr, "%s> ", c.who())
		if !in.Scan() {
			fmt.Fprintln(stderr)
			return in.Err()
		}
		if err := c.handle(strings.TrimSpace(in.Text())); err != nil {
			return err
		}
	}
}

// chat is one conversation and the adapter that answers it.
type chat struct {
	engine  *serve.Engine
	opts    options
	out     io.Writer
	log     io.Writer
	adapter string // "" is the base model
	history []bindings.ChatMessage
}

func (c *chat) who() string {
	if c.adapter == "" {
		return c.engine.Name()
	}
	return c.adapter
}

func (c *chat) reset() {
	c.history = c.history[:0]
	if c.opts.system != "" {
		c.history = append(c.history, bindings.ChatMessage{Role: "system", Content: c.opts.system})
	}
}

// handle runs a command or answers a user turn. Only failures that make going on
// pointless are returned; a reply that fails is reported and the conversation goes on.
func (c *chat) handle(line string) error {
	switch {
	case line == "":
		return nil
	case line == "/reset":
		c.reset()
		return nil
	case line == "/use" || strings.HasPrefix(line, "/use "):
		name := strings.TrimSpace(strings.TrimPrefix(line, "/use"))
		if name != "" && !c.engine.HasAdapter(name) {
			fmt.Fprintf(c.log, "no adapter is loaded as %q\n", name)
			return nil
		}
		c.adapter = name
		return nil
	}

	c.history = append(c.history, bindings.ChatMessage{Role: "user", Content: line})
	reply, err := c.reply()
	var tooLong *serve.PromptTooLongError
	switch {
	case errors.As(err, &tooLong):
		c.history = c.history[:len(c.history)-1]
		fmt.Fprintf(c.log, "%v; /reset starts over\n", err)
		return nil
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(c.log, "[stopped]")
	case err != nil:
		return err
	}
	// A stopped reply stays in the history as far as it got, so the turns keep alternating.
	c.history = append(c.history, bindings.ChatMessage{Role: "assistant", Content: reply})
	return nil
}

// reply streams the assistant's answer to the conversation so far and returns its text.
func (c *chat) reply() (string, error) {
	// Ctrl-C cancels this context instead of killing the program, for this reply only:
	// stop() restores the default, so Ctrl-C at the prompt exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	prompt, err := c.engine.ChatPrompt(c.history)
	if err != nil {
		return "", err
	}
	req := serve.Request{
		Prompt:    prompt,
		MaxTokens: c.opts.maxTokens,
		Sampler:   bindings.SamplerOptions{Temperature: float32(c.opts.temp), Seed: bindings.RandomSeed},
		Logprobs:  -1,
	}
	if c.adapter != "" {
		req.Adapters = []serve.AdapterRef{{Name: c.adapter, Scale: 1}}
	}
	stream, err := c.engine.Submit(ctx, req)
	if err != nil {
		return "", err
	}
	var text strings.Builder
	for tok, err := range stream.Tokens() {
		if err != nil {
			fmt.Fprintln(c.out)
			return text.String(), err
		}
		text.WriteString(tok.Text)
		if _, err := io.WriteString(c.out, tok.Text); err != nil {
			return text.String(), err
		}
	}
	_, err = fmt.Fprintln(c.out)
	return text.String(), err
}
