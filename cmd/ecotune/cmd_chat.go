package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/bindings"
)

func chatCommand() *cli.Command {
	return &cli.Command{
		Name:      "chat",
		Usage:     "chat with a GGUF model (and adapters) in the terminal",
		ArgsUsage: " ",
		Description: `Reads your messages from standard input, one per line, and streams the model's
answers, keeping the conversation in the model's own chat template (or the Alpaca
format with --format alpaca, for models tuned on it without a template). /reset forgets
the conversation, /exit or end of input quits; Ctrl-C stops an answer. Piped input
works too, one turn per line.

Example:
   ecotune chat -m base.gguf --lora run/adapter.gguf --system "You are a concise environmental science tutor."
   echo "What is albedo?" | ecotune chat -m out/demo/merged.gguf --format alpaca -n 64`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "system", Usage: "system message at the start of the conversation"},
			&cli.StringFlag{Name: "format", Value: "model", Usage: "conversation format: model (its chat template) or alpaca"},
		}, generationFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("chat takes no arguments (got %q); type your messages after it starts", c.Args().First())
			}
			if f := c.String("format"); f != "model" && f != "alpaca" {
				return usagef("--format %q: want model or alpaca", f)
			}
			model, lctx, done, err := openForGeneration(c)
			if err != nil {
				return err
			}
			defer done()
			s := &chatSession{model: model, lctx: lctx, opts: generateOptions(c), format: c.String("format"), system: c.String("system")}
			if s.format == "alpaca" {
				s.opts.Stop = append(s.opts.Stop, "\n### ")
			}
			return s.run(c.Context, os.Stdin, c.App.Writer, c.App.ErrWriter)
		},
	}
}

// chatSession is one conversation: the turns so far, rendered anew for each answer.
type chatSession struct {
	model  *bindings.Model
	lctx   *bindings.Context
	opts   bindings.GenerateOptions
	format string
	system string
	turns  []bindings.ChatMessage
}

func (s *chatSession) run(ctx context.Context, in io.Reader, out, errw io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	fmt.Fprintln(errw, "ecotune chat: type a message; /reset forgets the conversation, /exit quits")
	for {
		fmt.Fprint(errw, "> ")
		if !sc.Scan() {
			fmt.Fprintln(errw)
			return sc.Err()
		}
		line := strings.TrimSpace(sc.Text())
		switch line {
		case "":
			continue
		case "/exit", "/quit":
			return nil
		case "/reset":
			s.turns = nil
			fmt.Fprintln(errw, "(conversation forgotten)")
			continue
		}
		answer, err := s.answer(ctx, line, out)
		if err != nil {
			return err
		}
		s.turns = append(s.turns, bindings.ChatMessage{Role: "user", Content: line},
			bindings.ChatMessage{Role: "assistant", Content: strings.TrimSpace(answer)})
	}
}

// answer streams the reply to message after the conversation so far.
func (s *chatSession) answer(ctx context.Context, message string, out io.Writer) (string, error) {
	prompt, err := s.prompt(message)
	if err != nil {
		return "", err
	}
	if err := s.lctx.ClearMemory(); err != nil {
		return "", err
	}
	goctx, stop := signal.NotifyContext(ctx, syscall.SIGINT)
	defer stop()
	var b strings.Builder
	for tok, err := range bindings.Generate(goctx, s.lctx, prompt, s.opts) {
		if err != nil {
			if goctx.Err() != nil {
				break // Ctrl-C ends the answer, not the chat
			}
			return "", err
		}
		fmt.Fprint(out, tok.Text)
		b.WriteString(tok.Text)
	}
	fmt.Fprintln(out)
	return b.String(), nil
}

// prompt renders the conversation with message as the newest user turn.
func (s *chatSession) prompt(message string) (string, error) {
	msgs := append([]bindings.ChatMessage(nil), s.turns...)
	msgs = append(msgs, bindings.ChatMessage{Role: "user", Content: message})
	if s.format == "alpaca" {
		var b strings.Builder
		if s.system != "" {
			b.WriteString(s.system + "\n\n")
		}
		for _, m := range msgs {
			if m.Role == "user" {
				b.WriteString("### Instruction:\n" + m.Content + "\n\n### Response:\n")
			} else {
				b.WriteString(m.Content + "\n\n")
			}
		}
		return b.String(), nil
	}
	if s.system != "" {
		msgs = append([]bindings.ChatMessage{{Role: "system", Content: s.system}}, msgs...)
	}
	p, err := s.model.ApplyChatTemplate(msgs, true)
	if err != nil {
		return "", fmt.Errorf("%w (the model may have no chat template: try --format alpaca)", err)
	}
	return p, nil
}
