package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/export"
	"github.com/ecotune/ecotune/quant"
	"github.com/ecotune/ecotune/trainer"
)

func mergeCommand() *cli.Command {
	return &cli.Command{
		Name:      "merge",
		Usage:     "merge LoRA adapters into a GGUF model",
		ArgsUsage: " ",
		Description: `Writes base + scale·alpha/rank·B·A for each adapter into a new model, one
tensor at a time: each adapted weight is dequantized, the update is summed
in float64 and added, and the result is stored in the base tensor's own
type, or in the types llama-quantize would choose for --type. Tokenizer,
chat template and metadata are copied; general.base_model.* and
ecotune.merge.* record the base and the adapters with their scales.

--adapter takes FILE or FILE:SCALE (scale 1 by default, as llama.cpp's
--lora) and may be repeated. --type takes the names of ecotune quantize
(` + strings.Join(quant.UserTypes, ", ") + `). See docs/merge.md.

Example:
   ecotune merge --model base.gguf --adapter adapter.gguf -o merged.gguf
   ecotune merge --model base-f16.gguf --adapter a.gguf --adapter b.gguf:0.5 --type q4_k -o merged-q4_k.gguf`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Required: true, Usage: "base model GGUF"},
			&cli.StringSliceFlag{Name: "adapter", Aliases: []string{"a"}, Required: true, Usage: "LoRA adapter GGUF, FILE or FILE:SCALE (repeatable)"},
			&cli.StringFlag{Name: "type", Aliases: []string{"t"}, Usage: "output type (default: each tensor keeps the base's type)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "merged model GGUF"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("merge: unexpected arguments %v; the output goes to -o", c.Args().Slice())
			}
			opts := export.MergeOptions{Base: c.String("model"), Out: c.String("output"), Type: c.String("type")}
			if opts.Type != "" {
				if _, err := quant.ParseFileType(opts.Type); err != nil {
					return usageError{err}
				}
			}
			for _, s := range c.StringSlice("adapter") {
				as, err := parseAdapterScale(s)
				if err != nil {
					return usageError{err}
				}
				opts.Adapters = append(opts.Adapters, as)
			}
			if !c.Bool("quiet") {
				show := byteProgress(c.App.ErrWriter, "merging")
				opts.Progress = func(p export.Progress) { show(p.BytesDone, p.BytesTotal, p.Done, p.Total) }
			}
			// A merged copy of a model llama.cpp cannot load is no model either.
			if err := checkModelFile(opts.Base, trainer.CheckAll, true); err != nil {
				return err
			}
			sum, err := export.Merge(context.Background(), opts)
			if err != nil {
				return err
			}
			typ := "base types kept"
			if sum.Retyped {
				typ = sum.FileType.String()
			}
			fmt.Fprintf(c.App.Writer, "wrote %s (%s): %d of %d tensors merged from %d adapter(s); %s -> %s\n",
				opts.Out, typ, sum.Merged, sum.Tensors, len(opts.Adapters), mib(sum.InBytes), mib(sum.OutBytes))
			return nil
		},
	}
}

// parseAdapterScale reads FILE or FILE:SCALE. The scale is what follows the
// last colon when it is a number, so paths with colons still work.
func parseAdapterScale(s string) (export.AdapterScale, error) {
	if i := strings.LastIndexByte(s, ':'); i > 0 {
		if v, err := strconv.ParseFloat(s[i+1:], 64); err == nil {
			return export.AdapterScale{Path: s[:i], Scale: v}, nil
		}
	}
	if s == "" {
		return export.AdapterScale{}, fmt.Errorf("merge: empty --adapter")
	}
	return export.AdapterScale{Path: s, Scale: 1}, nil
}
