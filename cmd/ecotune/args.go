package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst moves a command's flags in front of its positional arguments, so that
// `ecotune prepare data/environment -o out` means what it says: urfave/cli v2 stops
// parsing flags at the first positional argument and would read "-o" as a path.
// Everything after "--" stays positional, and so does everything a command without
// flags receives. Unknown flags move too, so the parser reports them.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	// urfave/cli only completes when its flag is the very last argument.
	const complete = "--generate-bash-completion"
	if args[len(args)-1] == complete {
		return append(flagsFirst(app, args[:len(args)-1]), complete)
	}
	out := []string{args[0]}
	rest := args[1:]
	// Global flags, then the command path (commands and subcommands).
	cmds := app.Commands
	var leaf *cli.Command
	for len(rest) > 0 {
		tok := rest[0]
		if strings.HasPrefix(tok, "-") {
			if leaf != nil || tok == "--" {
				break
			}
			out, rest = append(out, tok), rest[1:]
			continue
		}
		next := findCommand(cmds, tok)
		if next == nil {
			break
		}
		out, rest = append(out, tok), rest[1:]
		leaf, cmds = next, next.Subcommands
	}
	if leaf == nil || len(leaf.Flags) == 0 {
		return append(out, rest...)
	}
	var flags, positional []string
	for i := 0; i < len(rest); i++ {
		tok := rest[i]
		if tok == "--" {
			positional = append(positional, rest[i:]...)
			break
		}
		if len(tok) < 2 || tok[0] != '-' {
			positional = append(positional, tok)
			continue
		}
		flags = append(flags, tok)
		name, _, hasValue := strings.Cut(strings.TrimLeft(tok, "-"), "=")
		if !hasValue && takesValue(leaf.Flags, name) && i+1 < len(rest) {
			i++
			flags = append(flags, rest[i])
		}
	}
	out = append(out, flags...)
	return append(out, positional...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether the flag called name reads the next argument as its
// value: every flag kind but booleans.
func takesValue(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}
