package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/trainer"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "write a random-init model GGUF of a given architecture and size",
		Description: `Writes a model with normally distributed weights (std 0.02), norms at 1 and
biases at 0, with the hyper-parameter keys and tensor names llama.cpp expects
for the architecture, and the tokenizer copied from a GGUF file (a model, or
one of llama.cpp's models/ggml-vocab-*.gguf). Architectures: ` + strings.Join(factory.Architectures(), ", ") + `.

--dims takes llama.cpp's hyper-parameter names: n_embd, n_layer, n_head,
n_head_kv, n_ff, n_ctx, head_dim, n_rot, rope_base.

--weights takes the tensors from another GGUF of the same shape instead (converted to
--type): a trained model stored without its tokenizer gets one back this way.

Example:
   ecotune init --arch llama --dims n_embd=256,n_layer=2,n_head=4,n_head_kv=2,n_ff=768 \
       --vocab third_party/llama.cpp/models/ggml-vocab-llama-spm.gguf -o tiny.gguf`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "arch", Value: "llama", Usage: "architecture: " + strings.Join(factory.Architectures(), ", ")},
			&cli.StringFlag{Name: "dims", Value: "n_embd=64,n_layer=2,n_head=4,n_ff=256", Usage: "dimensions as key=value,..."},
			&cli.StringFlag{Name: "vocab", Usage: "GGUF file whose tokenizer to copy (sets the vocabulary size)"},
			&cli.IntFlag{Name: "vocab-size", Usage: "without --vocab: vocabulary size of a model with no tokenizer (for quantization tests; llama.cpp cannot run it)"},
			&cli.StringFlag{Name: "type", Value: "f32", Usage: "weight type: f32 or f16 (norms and biases stay f32)"},
			&cli.BoolFlag{Name: "tied", Usage: "no output.weight: reuse the token embeddings (llama, qwen2, phi3)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed"},
			&cli.StringFlag{Name: "weights", Usage: "take every tensor from this GGUF (same names and shapes) instead of random values"},
			&cli.Float64Flag{Name: "std", Value: factory.DefaultStd, Usage: "standard deviation of the weights"},
			&cli.StringFlag{Name: "name", Usage: "general.name (default ecotune-ARCH-random)"},
			// Not Required: urfave/cli reports a missing required flag as a plain
			// error (exit 1); the Action reports it as a usage error (exit 2).
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output GGUF path (required)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("init: unexpected arguments %v; the output goes to -o", c.Args().Slice())
			}
			out := c.String("output")
			if out == "" {
				return usagef("init: give the output path with -o FILE.gguf")
			}
			spec := factory.Spec{
				Arch:           c.String("arch"),
				VocabFile:      c.String("vocab"),
				VocabSize:      c.Int("vocab-size"),
				TiedEmbeddings: c.Bool("tied"),
				Seed:           c.Uint64("seed"),
				Weights:        c.String("weights"),
				Std:            c.Float64("std"),
				Name:           c.String("name"),
			}
			if spec.VocabFile == "" && spec.VocabSize == 0 {
				return usagef("init: give --vocab FILE.gguf (e.g. third_party/llama.cpp/models/ggml-vocab-llama-spm.gguf) or --vocab-size N")
			}
			if err := factory.ParseDims(c.String("dims"), &spec); err != nil {
				return usageError{err}
			}
			switch strings.ToLower(c.String("type")) {
			case "f32":
				spec.Type = gguf.TypeF32
			case "f16":
				spec.Type = gguf.TypeF16
			default:
				return usagef("init: --type %q: want f32 or f16 (then `ecotune quantize` for smaller types)", c.String("type"))
			}
			// A spec that cannot work is a usage error; a vocabulary file
			// that cannot be read is found by Init, an error like any I/O one.
			if err := spec.Validate(); err != nil {
				return usageError{err}
			}
			// The new model inherits the vocabulary file's tokenizer: a broken one would
			// make a model llama.cpp cannot load.
			if spec.VocabFile != "" {
				if err := checkModelFile(spec.VocabFile, trainer.CheckParts{Vocab: true}, true); err != nil {
					return err
				}
			}
			if spec.Weights != "" {
				if err := checkModelFile(spec.Weights, trainer.CheckParts{}, true); err != nil {
					return err
				}
			}
			if err := factory.Init(spec, out); err != nil {
				return err
			}
			f, err := gguf.Open(out)
			if err != nil {
				return err
			}
			defer f.Close()
			var params int64
			for _, t := range f.Tensors {
				n, _ := t.Elements()
				params += n
			}
			fmt.Fprintf(c.App.Writer, "wrote %s: %s, %d tensors, %.2fM parameters, %s\n", out, spec.Arch, len(f.Tensors), float64(params)/1e6, mib(f.Size))
			return nil
		},
	}
}
