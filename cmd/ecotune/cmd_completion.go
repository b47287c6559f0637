package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// Completion scripts ask the binary itself for candidates (urfave/cli's
// --generate-bash-completion), so they stay right as commands and flags change.
const bashCompletion = `# ecotune bash completion: source <(ecotune completion bash)
_ecotune_complete() {
  local cur words
  cur="${COMP_WORDS[COMP_CWORD]}"
  words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  if [[ "$cur" == -* ]]; then
    words+=("$cur")
  fi
  COMPREPLY=($(compgen -W "$("${words[@]}" --generate-bash-completion 2>/dev/null)" -- "$cur"))
  [[ ${#COMPREPLY[@]} -eq 0 ]] && COMPREPLY=($(compgen -f -- "$cur"))
  return 0
}
complete -o filenames -F _ecotune_complete ecotune
`

const zshCompletion = `#compdef ecotune
# ecotune zsh completion: source <(ecotune completion zsh)
_ecotune() {
  local -a opts
  opts=("${(@f)$(${words[@]:0:#words[@]-1} ${words[-1]} --generate-bash-completion 2>/dev/null)}")
  _describe 'values' opts && return
  _files
}
compdef _ecotune ecotune
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash or zsh)",
		ArgsUsage: "bash|zsh",
		Description: `Prints a script that completes ecotune's commands and flags.

Example:
   source <(ecotune completion bash)
   ecotune completion zsh > "${fpath[1]}/_ecotune"`,
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "bash":
				fmt.Fprint(c.App.Writer, bashCompletion)
			case "zsh":
				fmt.Fprint(c.App.Writer, zshCompletion)
			default:
				return usagef("completion takes bash or zsh (got %q)", c.Args().First())
			}
			return nil
		},
	}
}
