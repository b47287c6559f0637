package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/quant"
	"github.com/ecotune/ecotune/trainer"
)

func quantizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "quantize",
		Usage:     "quantize a GGUF model with llama-quantize's per-tensor rules",
		ArgsUsage: "IN.gguf OUT.gguf",
		Description: `Writes IN's weights to OUT in a smaller type, one tensor at a time, with
ggml's own quantizers and llama-quantize's choice of type per tensor: 1-D
tensors (norms, biases) stay F32, the output matrix keeps more bits, and a
row width the type's block does not divide falls back to a smaller block.
The result is byte for byte what llama-quantize writes for the same type.

Types: q4_k (llama-quantize's Q4_K_M mix), q4_0, iq4_nl, nf4 (stored as
IQ4_NL, ggml's 4-bit codebook type: ggml has no NF4), q8_0, f16, bf16; also
llama-quantize's names (Q4_K_S, Q5_K_M, Q6_K, ...). See docs/quantization.md.

Example:
   ecotune quantize model-f16.gguf model-q4_k.gguf --type q4_k`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "type", Aliases: []string{"t"}, Value: "q4_k", Usage: "target type: " + strings.Join(quant.UserTypes, ", ")},
			&cli.BoolFlag{Name: "pure", Usage: "give every quantizable tensor the type itself, without the mix rules"},
			&cli.BoolFlag{Name: "allow-requantize", Usage: "allow quantizing tensors that are already quantized"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print each tensor's planned type and the sizes, write nothing"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		},
		Action: func(c *cli.Context) error {
			args := c.Args().Slice() // flags after them were moved first (flagsFirst)
			if len(args) != 2 {
				return usagef("quantize: want IN.gguf OUT.gguf, got %d arguments", len(args))
			}
			in, out := args[0], args[1]
			ft, err := quant.ParseFileType(c.String("type"))
			if err != nil {
				return usageError{err}
			}
			opts := quant.Options{Type: ft, Pure: c.Bool("pure"), AllowRequantize: c.Bool("allow-requantize")}
			if c.Bool("dry-run") {
				f, err := gguf.Open(in)
				if err != nil {
					return err
				}
				defer f.Close()
				s, err := quant.Plan(f, opts)
				if err != nil {
					return err
				}
				s.InFileBytes = f.Size
				for _, t := range s.Tensors {
					fmt.Fprintf(c.App.Writer, "%-36s %-16s %6s -> %s\n", t.Name, fmt.Sprint(t.Dims), t.From, t.To)
				}
				printSummary(c.App.Writer, s)
				return nil
			}
			if !c.Bool("quiet") {
				show := byteProgress(c.App.ErrWriter, "quantizing to "+ft.String())
				opts.Progress = func(p quant.Progress) { show(p.BytesDone, p.BytesTotal, p.Done, p.Total) }
			}
			// A quantized copy of a model llama.cpp cannot load is no model either.
			if err := checkModelFile(in, trainer.CheckAll, true); err != nil {
				return err
			}
			s, err := quant.QuantizeModel(context.Background(), in, out, opts)
			if err != nil {
				return fmt.Errorf("quantize %s: %w", in, err)
			}
			fmt.Fprintf(c.App.Writer, "wrote %s (%s)\n", out, ft)
			printSummary(c.App.Writer, s)
			return nil
		},
	}
}

// printSummary prints the type counts and the before/after sizes.
func printSummary(w io.Writer, s *quant.Summary) {
	counts := s.TypeCounts()
	types := slices.Sorted(maps.Keys(counts))
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s %d", t, counts[t])
	}
	fmt.Fprintf(w, "tensors: %d (%s)", len(s.Tensors), strings.Join(parts, ", "))
	if s.Fallbacks > 0 {
		fmt.Fprintf(w, "; %d fell back to a smaller block", s.Fallbacks)
	}
	fmt.Fprintln(w)
	before, after := s.BitsPerWeight()
	fmt.Fprintf(w, "tensor data: %s -> %s (%.2f -> %.2f bits per weight)\n", mib(s.InBytes), mib(s.OutBytes), before, after)
	if s.OutFileBytes > 0 {
		fmt.Fprintf(w, "file: %s -> %s (%.1f%% of the original)\n", mib(s.InFileBytes), mib(s.OutFileBytes), 100*float64(s.OutFileBytes)/float64(s.InFileBytes))
	}
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
