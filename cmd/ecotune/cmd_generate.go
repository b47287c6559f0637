package main

import (
	"context"
	"fmt"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/trainer"
)

func generateCommand() *cli.Command {
	return &cli.Command{
		Name:      "generate",
		Usage:     "generate text from a GGUF model, optionally with LoRA adapters",
		ArgsUsage: " ",
		Description: `Streams a model's continuation of a prompt to standard output. With --chat the
prompt is wrapped in the model's own chat template as a user turn. Adapters are applied
with llama.cpp's scaling (scale × alpha / rank); several may be given. Ctrl-C stops it
within one token.

Example:
   ecotune generate -m model.gguf -p "Once upon a time" -n 40
   ecotune generate -m base.gguf --lora run/adapter.gguf:0.8 --chat -p "What is albedo?"`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "prompt", Aliases: []string{"p"}, Usage: "prompt text", Required: true},
			&cli.BoolFlag{Name: "chat", Usage: "apply the model's chat template to the prompt"},
		}, generationFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("generate takes no arguments (got %q); pass the prompt with -p", c.Args().First())
			}
			model, lctx, done, err := openForGeneration(c)
			if err != nil {
				return err
			}
			defer done()
			prompt := c.String("prompt")
			if c.Bool("chat") {
				prompt, err = model.ApplyChatTemplate([]bindings.ChatMessage{{Role: "user", Content: prompt}}, true)
				if err != nil {
					return fmt.Errorf("%w (the model may have no chat template; drop --chat)", err)
				}
			}
			opts := generateOptions(c)
			goctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			w := c.App.Writer
			if !c.Bool("chat") {
				fmt.Fprint(w, c.String("prompt"))
			}
			for tok, err := range bindings.Generate(goctx, lctx, prompt, opts) {
				if err != nil {
					if goctx.Err() != nil && context.Cause(goctx) != nil {
						fmt.Fprintln(w)
						return nil
					}
					return err
				}
				fmt.Fprint(w, tok.Text)
			}
			fmt.Fprintln(w)
			return nil
		},
	}
}

// parseAdapterSpec splits "FILE[:SCALE]"; the scale defaults to 1.
func parseAdapterSpec(spec string) (string, float32, error) {
	i := strings.LastIndexByte(spec, ':')
	if i < 0 {
		return spec, 1, nil
	}
	s, err := strconv.ParseFloat(spec[i+1:], 32)
	if err != nil {
		// A colon that is part of the path, not a scale.
		return spec, 1, nil
	}
	if spec[:i] == "" {
		return "", 0, fmt.Errorf("--lora %q: no file before the scale", spec)
	}
	return spec[:i], float32(s), nil
}

// generationFlags are the model, adapter and sampling flags generate and chat share.
func generationFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "GGUF model file", Required: true},
		&cli.StringSliceFlag{Name: "lora", Usage: "LoRA adapter GGUF, optionally FILE:SCALE (repeatable)"},
		&cli.IntFlag{Name: "max-tokens", Aliases: []string{"n"}, Value: 128, Usage: "most tokens to generate"},
		&cli.Float64Flag{Name: "temp", Value: 0, Usage: "temperature; 0 is greedy"},
		&cli.IntFlag{Name: "top-k", Value: 40, Usage: "top-k sampling (with --temp > 0)"},
		&cli.Float64Flag{Name: "top-p", Value: 0.95, Usage: "top-p sampling (with --temp > 0)"},
		&cli.Float64Flag{Name: "min-p", Value: 0.05, Usage: "min-p sampling (with --temp > 0)"},
		&cli.Float64Flag{Name: "repeat-penalty", Value: 1, Usage: "repetition penalty; 1 is off"},
		&cli.UintFlag{Name: "seed", Value: 42, Usage: "sampling seed"},
		&cli.StringSliceFlag{Name: "stop", Usage: "stop string (repeatable)"},
		&cli.IntFlag{Name: "ctx", Value: 2048, Usage: "context length"},
		&cli.IntFlag{Name: "threads", Usage: "CPU threads (default: all)"},
		&cli.IntFlag{Name: "gpu-layers", Value: -1, Usage: "layers to offload to a GPU (CUDA builds) or to --rpc servers; -1 all"},
		&cli.StringSliceFlag{Name: "rpc", Usage: "HOST:PORT[,HOST:PORT...] of llama.cpp rpc-servers that hold the --gpu-layers layers (trusted networks only)"},
	}
}

// openForGeneration loads --model with its --lora adapters applied to a new context;
// done frees them all.
func openForGeneration(c *cli.Context) (model *bindings.Model, lctx *bindings.Context, done func(), err error) {
	var closers []func() error
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	// An error return sets done to nil, so the cleanup on failure must not go through it.
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	modelFile, err := modelPath(c.Context, c.String("model"), c.App.ErrWriter)
	if err != nil {
		return nil, nil, nil, err
	}
	if err = checkModelFile(modelFile, trainer.CheckAll, true); err != nil {
		return nil, nil, nil, err
	}
	if model, err = bindings.LoadModel(modelFile, bindings.ModelOptions{
		GPULayers: c.Int("gpu-layers"), RPCServers: c.StringSlice("rpc"),
	}); err != nil {
		return nil, nil, nil, err
	}
	closers = append(closers, model.Close)
	if lctx, err = bindings.NewContext(model, bindings.ContextOptions{NCtx: c.Int("ctx"), Threads: c.Int("threads"), BatchInvariant: true, GreedyInGraph: true}); err != nil {
		return nil, nil, nil, err
	}
	closers = append(closers, lctx.Close)
	var scales []bindings.AdapterScale
	for _, spec := range c.StringSlice("lora") {
		path, scale, err := parseAdapterSpec(spec)
		if err != nil {
			return nil, nil, nil, usageError{err}
		}
		a, err := bindings.LoadAdapter(model, path)
		if err != nil {
			return nil, nil, nil, err
		}
		closers = append(closers, a.Close)
		scales = append(scales, bindings.AdapterScale{Adapter: a, Scale: scale})
	}
	if len(scales) > 0 {
		if err := lctx.SetAdapters(scales); err != nil {
			return nil, nil, nil, err
		}
	}
	return model, lctx, closeAll, nil
}

// generateOptions reads the sampling flags.
func generateOptions(c *cli.Context) bindings.GenerateOptions {
	return bindings.GenerateOptions{
		MaxTokens: c.Int("max-tokens"),
		Stop:      c.StringSlice("stop"),
		Sampler: bindings.SamplerOptions{
			Temperature:   float32(c.Float64("temp")),
			TopK:          c.Int("top-k"),
			TopP:          float32(c.Float64("top-p")),
			MinP:          float32(c.Float64("min-p")),
			RepeatPenalty: float32(c.Float64("repeat-penalty")),
			Seed:          uint32(c.Uint("seed")),
		},
	}
}
