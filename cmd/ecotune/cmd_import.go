package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/export"
	"github.com/ecotune/ecotune/trainer"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:        "import",
		Usage:       "import an adapter from another tool's format (PEFT)",
		Description: `Converts an adapter written by another tool into a llama.cpp LoRA GGUF. See docs/export.md.`,
		Subcommands: []*cli.Command{importPEFTCommand()},
	}
}

func importPEFTCommand() *cli.Command {
	return &cli.Command{
		Name:      "peft",
		Usage:     "convert a Hugging Face PEFT LoRA directory to an adapter GGUF",
		ArgsUsage: "DIR",
		Description: `Reads DIR/adapter_config.json and DIR/adapter_model.safetensors (PEFT's
save_pretrained) and writes a LoRA adapter GGUF for the base model, loadable
with llama.cpp's --lora and by ecotune merge: keys renamed to llama.cpp's
tensor names, and for llama models the rows of q and k lora_B reordered as
llama.cpp's converter reorders the weights. rsLoRA and alpha_pattern are
folded into the adapter. DoRA, biases and modules_to_save are refused.

Example:
   ecotune import peft peft-adapter/ --model base.gguf -o adapter.gguf`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "base model GGUF (required)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "adapter GGUF to write (required)"},
		},
		Action: func(c *cli.Context) error {
			args := c.Args().Slice() // flags after them were moved first (flagsFirst)
			if len(args) != 1 {
				return usagef("import peft: want one PEFT directory, got %d arguments", len(args))
			}
			if c.String("model") == "" || c.String("output") == "" {
				return usagef("import peft: --model BASE.gguf and -o ADAPTER.gguf are required")
			}
			if err := checkModelFile(c.String("model"), trainer.CheckParts{Arch: true}, false); err != nil {
				return err
			}
			sum, err := export.ImportPEFT(export.ImportOptions{Dir: args[0], Base: c.String("model"), Out: c.String("output")})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote %s: %d LoRA pairs, r %d, alpha %g", c.String("output"), sum.Pairs, sum.Rank, sum.Alpha)
			if sum.Permuted > 0 {
				fmt.Fprintf(c.App.Writer, "; %d q/k lora_B put in llama.cpp row order", sum.Permuted)
			}
			fmt.Fprintln(c.App.Writer)
			return nil
		},
	}
}
