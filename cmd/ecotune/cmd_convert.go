package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/convert"
	"github.com/ecotune/ecotune/quant"
)

func convertCommand() *cli.Command {
	return &cli.Command{
		Name:      "convert",
		Usage:     "convert a Hugging Face checkpoint folder into a GGUF model",
		ArgsUsage: "HF_DIR",
		Description: `Reads config.json, the safetensors weights (one file or shards with
model.safetensors.index.json; F32, F16, BF16 or F64) and the tokenizer
(tokenizer.model for SentencePiece, else tokenizer.json; tokenizer_config.json
for special tokens and the chat template) and writes one GGUF file that
llama.cpp and ecotune load, as llama.cpp's convert_hf_to_gguf.py would, without
Python. Architectures: LlamaForCausalLM (Llama 2/3, TinyLlama, SmolLM),
MistralForCausalLM, Qwen2ForCausalLM, Phi3ForCausalLM, PhiForCausalLM (phi-2),
Gemma2ForCausalLM.

--type auto keeps each weight's type (F64 becomes F32); f32, f16, bf16 convert
them; a quantized type (q8_0, q4_k, iq4_nl, ...) converts losslessly to a
temporary file beside the output and quantizes it with "ecotune quantize"'s
rules. Tensors stream a few megabytes at a time; the output appears only once
complete. The BPE pre-tokenizer is recognised from tokenizer.json and then
checked by tokenizing llama.cpp's check text with the written file. See
docs/convert.md.

Example:
   ecotune convert SmolLM2-135M-Instruct -o smollm2.gguf
   ecotune convert Qwen2.5-0.5B-Instruct -o qwen.gguf --type q8_0`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "GGUF file to write"},
			&cli.StringFlag{Name: "type", Aliases: []string{"t"}, Value: "auto", Usage: "weight type: auto, f32, f16, bf16, or a quantized type (" + strings.Join(quant.UserTypes, ", ") + ")"},
			&cli.StringFlag{Name: "pre", Usage: "llama.cpp pre-tokenizer name (tokenizer.ggml.pre) instead of the recognised one"},
			&cli.StringFlag{Name: "name", Usage: "general.name (default: config.json's _name_or_path or the folder name)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("convert takes one HF_DIR (got %d arguments)", c.NArg())
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runConvert(ctx, c.Args().First(), c.String("output"), c.String("type"), c.String("pre"), c.String("name"), c.Bool("quiet"), c.App.Writer, c.App.ErrWriter)
		},
	}
}

// runConvert converts dir to out; a quantized type goes through a lossless
// temporary GGUF beside out and quant.QuantizeModel.
func runConvert(ctx context.Context, dir, out, typ, pre, name string, quiet bool, w, errw io.Writer) error {
	opts := convert.Options{Dir: dir, Out: out, Type: typ, Pre: pre, Name: name}
	var ft quant.FileType
	quantized := false
	switch strings.ToLower(typ) {
	case "", "auto", "f32", "f16", "bf16":
	default:
		var err error
		if ft, err = quant.ParseFileType(typ); err != nil {
			return usageError{err}
		}
		tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".convert-*.gguf")
		if err != nil {
			return err
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		opts.Out, opts.Type, quantized = tmp.Name(), "auto", true
	}
	if !quiet {
		show := byteProgress(errw, "converting")
		opts.Progress = func(p convert.Progress) { show(p.BytesDone, p.BytesTotal, p.Done, p.Total) }
	}
	sum, err := convert.Convert(ctx, opts)
	if err != nil {
		return err
	}
	if quantized {
		qo := quant.Options{Type: ft}
		if !quiet {
			show := byteProgress(errw, "quantizing to "+ft.String())
			qo.Progress = func(p quant.Progress) { show(p.BytesDone, p.BytesTotal, p.Done, p.Total) }
		}
		if _, err := quant.QuantizeModel(ctx, opts.Out, out, qo); err != nil {
			return err
		}
	}
	t := sum.Tokenizer
	fmt.Fprintf(w, "wrote %s: %s → %s, %d tensors (%s), %s; tokenizer %s, %d tokens", out, sum.Class, sum.Arch, sum.Tensors,
		typeName(sum, quantized, ft), mib(sum.Bytes), t.Model, t.Tokens)
	if t.Model == "gpt2" {
		fmt.Fprintf(w, ", %d merges, pre-tokenizer %s (%s)", t.Merges, t.Pre, t.PreHow)
	}
	fmt.Fprintln(w)
	for _, n := range sum.Notes {
		fmt.Fprintln(w, "note: "+n)
	}
	if t.Model == "gpt2" {
		checkPre(out, t.Pre, w)
	}
	return nil
}

func typeName(sum *convert.Summary, quantized bool, ft quant.FileType) string {
	if quantized {
		return ft.String()
	}
	return strings.ToUpper(sum.FileType.String())
}

// checkPre tokenizes llama.cpp's check text with the written model and looks
// the hash up in the table llama.cpp's converter uses: a second opinion on
// the pre-tokenizer recognised from tokenizer.json.
func checkPre(path, pre string, w io.Writer) {
	m, err := bindings.LoadModel(path, bindings.ModelOptions{VocabOnly: true})
	if err != nil {
		fmt.Fprintf(w, "note: the pre-tokenizer could not be checked: %v\n", err)
		return
	}
	defer m.Close()
	hash, err := convert.PreHash(vocabTokenizer{m})
	if err != nil {
		fmt.Fprintf(w, "note: the pre-tokenizer could not be checked: %v\n", err)
		return
	}
	switch name, ok := convert.KnownPre(hash); {
	case ok && name == pre:
		fmt.Fprintf(w, "pre-tokenizer %s confirmed: llama.cpp's check text hashes to its entry in the converter's table\n", pre)
	case ok:
		fmt.Fprintf(w, "warning: the check text tokenizes as llama.cpp's table says %q does, not %q; consider --pre %s\n", name, pre, name)
	default:
		fmt.Fprintf(w, "note: the check text's hash %s is not in the table for the recognised tokenizers; %s was chosen from tokenizer.json's regex\n", hash[:16], pre)
	}
}

// vocabTokenizer adds special tokens as the model does (transformers' encode).
type vocabTokenizer struct{ m *bindings.Model }

func (v vocabTokenizer) Tokenize(text string) ([]int32, error) {
	return v.m.Tokenize(text, true, false)
}
