package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/export"
	"github.com/ecotune/ecotune/export/onnx"
	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/quant"
	"github.com/ecotune/ecotune/trainer"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "export a LoRA adapter (PEFT, Ollama) or a model (ONNX, Hugging Face) for other tools",
		Description: `Writes a LoRA adapter GGUF in another tool's format, or a model as an ONNX
graph. See docs/export.md; "ecotune import peft" converts back, "ecotune
merge" folds an adapter into the model (merge first to export it as ONNX).`,
		Subcommands: []*cli.Command{exportPEFTCommand(), exportOllamaCommand(), exportONNXCommand(), exportHFCommand()},
	}
}

func exportPEFTCommand() *cli.Command {
	return &cli.Command{
		Name:      "peft",
		Usage:     "write a Hugging Face PEFT adapter directory",
		ArgsUsage: " ",
		Description: `Writes DIR/adapter_config.json and DIR/adapter_model.safetensors, loadable
with PeftModel.from_pretrained(model, DIR): PEFT's key names
(base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight, ...),
lora_A [r, in] and lora_B [out, r], and for llama models the rows of q and k
put back in Hugging Face's order (llama.cpp's converter reorders them for
its RoPE). base_model_name_or_path comes from the model's general metadata
unless --base-name is given. Architectures: llama, qwen2, gemma2, phi2, phi3.

Example:
   ecotune export peft --adapter adapter.gguf --model base.gguf -o peft-adapter/`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "adapter", Aliases: []string{"a"}, Required: true, Usage: "LoRA adapter GGUF"},
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Required: true, Usage: "base model GGUF the adapter was trained on"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "output directory"},
			&cli.StringFlag{Name: "base-name", Usage: "base_model_name_or_path (default: from the model's metadata)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("export peft: unexpected arguments %v; the output goes to -o", c.Args().Slice())
			}
			if err := checkModelFile(c.String("model"), trainer.CheckParts{Arch: true}, false); err != nil {
				return err
			}
			sum, err := export.ExportPEFT(export.PEFTOptions{Adapter: c.String("adapter"), Base: c.String("model"), Dir: c.String("output"), BaseModelName: c.String("base-name")})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote %s: %d LoRA pairs, r %d, lora_alpha %g, target_modules %s",
				c.String("output"), sum.Pairs, sum.Rank, sum.Alpha, strings.Join(sum.TargetModules, ","))
			if sum.Permuted > 0 {
				fmt.Fprintf(c.App.Writer, "; %d q/k lora_B put in Hugging Face row order", sum.Permuted)
			}
			if sum.BaseModelName == "" {
				fmt.Fprintf(c.App.Writer, "\nnote: the model's metadata names no base model; set base_model_name_or_path with --base-name")
			}
			fmt.Fprintln(c.App.Writer)
			return nil
		},
	}
}

func exportOllamaCommand() *cli.Command {
	return &cli.Command{
		Name:      "ollama",
		Usage:     "write an Ollama Modelfile for a model and adapter",
		ArgsUsage: " ",
		Description: `Writes DIR/Modelfile with FROM (the model), ADAPTER (the LoRA), the model's
chat template translated to Ollama's template syntax when it is a known one
(chatml, llama3, llama2, phi3, gemma, alpaca) with its stop markers, and
SYSTEM. --copy puts the model and adapter into DIR (hard links where
possible) so the directory is self-contained.

Example:
   ecotune export ollama --model base.gguf --adapter adapter.gguf -o ollama/
   ollama create my-model -f ollama/Modelfile`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Required: true, Usage: "base model GGUF"},
			&cli.StringFlag{Name: "adapter", Aliases: []string{"a"}, Required: true, Usage: "LoRA adapter GGUF"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "output directory"},
			&cli.BoolFlag{Name: "copy", Usage: "link or copy the model and adapter into the directory"},
			&cli.StringFlag{Name: "format", Usage: "chat format instead of detecting it: chatml, llama3, llama2, phi3, gemma, alpaca"},
			&cli.StringFlag{Name: "system", Usage: "SYSTEM message"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("export ollama: unexpected arguments %v; the output goes to -o", c.Args().Slice())
			}
			// Ollama runs the model with llama.cpp: a Modelfile for one it cannot load helps nobody.
			if err := checkModelFile(c.String("model"), trainer.CheckAll, true); err != nil {
				return err
			}
			sum, err := export.WriteOllama(export.OllamaOptions{Base: c.String("model"), Adapter: c.String("adapter"), Dir: c.String("output"),
				Copy: c.Bool("copy"), Format: c.String("format"), System: c.String("system")})
			if err != nil {
				return err
			}
			format := sum.Format
			if format == "" {
				format = "not recognized; Ollama will detect it"
			}
			fmt.Fprintf(c.App.Writer, "wrote %s (chat template: %s)\nnext: ollama create NAME -f %s\n", sum.Path, format, sum.Path)
			return nil
		},
	}
}

func exportONNXCommand() *cli.Command {
	return &cli.Command{
		Name:      "onnx",
		Usage:     "write a model as an ONNX graph for onnxruntime",
		ArgsUsage: " ",
		Description: `Writes the decoder of a GGUF model (llama, qwen2) as an ONNX model (opset
17, standard operators): input_ids, attention_mask, position_ids (int64,
[batch, sequence]) in, logits [batch, sequence, vocab] out, computing what
llama.cpp computes on the file. --kv-cache adds Hugging Face Optimum's cache
inputs past_key_values.N.key/.value [batch, kv_heads, past_len, head_dim]
(past_len may be 0) and outputs present.N.key/.value. Weights are
initializers with Hugging Face's names: F32 and F16 keep their type, others
are dequantized to F32; past 2 GB (or with --external-data) they go to
OUT.data beside the model. To export a fine-tuned model, merge the adapter
first ("ecotune merge"). See docs/export.md.

Example:
   ecotune export onnx --model merged.gguf -o model.onnx
   ecotune export onnx --model merged.gguf --kv-cache -o decoder_with_past.onnx`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Required: true, Usage: "model GGUF (llama or qwen2)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "ONNX file to write"},
			&cli.BoolFlag{Name: "kv-cache", Usage: "add past_key_values inputs and present outputs"},
			&cli.BoolFlag{Name: "external-data", Usage: "put the weights in OUTPUT.data even under 2 GB"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("export onnx: unexpected arguments %v; the output goes to -o", c.Args().Slice())
			}
			opts := onnx.Options{Model: c.String("model"), Out: c.String("output"), KVCache: c.Bool("kv-cache"), ExternalData: c.Bool("external-data"),
				Dequantize: func(t gguf.Type, data []byte, n int) ([]float32, error) {
					return quant.Dequantize(ggml.Type(t), data, n)
				}}
			if !c.Bool("quiet") {
				show := byteProgress(c.App.ErrWriter, "exporting")
				opts.Progress = func(p onnx.Progress) { show(p.BytesDone, p.BytesTotal, p.Done, p.Total) }
			}
			if err := checkModelFile(opts.Model, trainer.CheckParts{Arch: true}, false); err != nil {
				return err
			}
			sum, err := onnx.Export(context.Background(), opts)
			if err != nil {
				return err
			}
			cache := "no KV cache"
			if opts.KVCache {
				cache = "KV cache inputs/outputs"
			}
			fmt.Fprintf(c.App.Writer, "wrote %s (%s, %d layers, %d/%d heads, vocab %d, %s): %.1fM parameters, %s",
				opts.Out, sum.Arch, sum.Layers, sum.Heads, sum.KVHeads, sum.Vocab, cache, float64(sum.Params)/1e6, mib(sum.Bytes))
			if sum.DataFile != "" {
				fmt.Fprintf(c.App.Writer, "; weights in %s", sum.DataFile)
			}
			fmt.Fprintln(c.App.Writer)
			return nil
		},
	}
}
