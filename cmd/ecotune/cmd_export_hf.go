package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/convert"
	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/quant"
	"github.com/ecotune/ecotune/trainer"
)

func exportHFCommand() *cli.Command {
	return &cli.Command{
		Name:      "hf",
		Usage:     "write a model as a Hugging Face checkpoint folder",
		ArgsUsage: " ",
		Description: `Writes DIR/config.json, the weights as safetensors (model.safetensors, or
shards with model.safetensors.index.json past --shard-size), the tokenizer
(tokenizer.json for BPE vocabularies, tokenizer.model for SentencePiece ones)
and tokenizer_config.json with the chat template: what transformers'
from_pretrained and vLLM load. The inverse of "ecotune convert": llama's q/k
rows go back to transformers' order, gemma2's norms lose the +1 GGUF adds.
F32, F16 and BF16 weights keep their type unless --dtype is given; quantized
ones are dequantized (to F32 by default). Architectures: llama, qwen2, phi3,
phi2, gemma2. To export a fine-tuned model, merge the adapter first
("ecotune merge"). See docs/convert.md.

Example:
   ecotune export hf --model merged.gguf -o merged-hf/`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Required: true, Usage: "model GGUF"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "output directory"},
			&cli.StringFlag{Name: "dtype", Usage: "weight dtype: f32, f16, bf16 (default: the model's, F32 for quantized weights)"},
			&cli.Int64Flag{Name: "shard-size", Value: convert.DefaultShardBytes, Usage: "largest safetensors file, in bytes"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("export hf: unexpected arguments %v; the output goes to -o", c.Args().Slice())
			}
			opts := convert.ExportOptions{Model: c.String("model"), Dir: c.String("output"), DType: c.String("dtype"), ShardBytes: c.Int64("shard-size"),
				Dequantize: func(t gguf.Type, data []byte, n int) ([]float32, error) {
					return quant.Dequantize(ggml.Type(t), data, n)
				}}
			if !c.Bool("quiet") {
				show := byteProgress(c.App.ErrWriter, "exporting")
				opts.Progress = func(p convert.Progress) { show(p.BytesDone, p.BytesTotal, p.Done, p.Total) }
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			// A checkpoint of a model llama.cpp cannot load is no model in transformers either.
			if err := checkModelFile(opts.Model, trainer.CheckAll, true); err != nil {
				return err
			}
			sum, err := convert.ExportHF(ctx, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote %s (%s, %d tensors, %s): %s\n", opts.Dir, sum.Arch, sum.Tensors, mib(sum.Bytes), strings.Join(sum.Files, ", "))
			for _, n := range sum.Notes {
				fmt.Fprintln(c.App.Writer, "note: "+n)
			}
			return nil
		},
	}
}
