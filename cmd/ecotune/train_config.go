package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/config"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/quant"
)

// trainFlagOf maps each configuration key to the ecotune train flag that sets it.
func trainFlagOf() map[string]string {
	return map[string]string{
		"model.name": "model-name", "model.path": "model", "model.dtype": "dtype", "model.compute_dtype": "compute-dtype",
		"data.train": "data", "data.val": "val", "data.val_split": "val-split", "data.seq_len": "seq-len", "data.packing": "packing", "data.train_on_inputs": "train-on-inputs",
		"lora.r": "lora.r", "lora.lora_alpha": "lora.alpha", "lora.lora_dropout": "lora.dropout",
		"lora.target_modules": "lora.targets", "lora.use_rslora": "lora.rslora", "lora.task_name": "lora.task",
		"training.method": "method", "training.learning_rate": "lr", "training.min_learning_rate": "min-lr", "training.scheduler": "schedule",
		"training.warmup_steps": "warmup", "training.max_steps": "steps", "training.epochs": "epochs",
		"training.batch_size": "batch", "training.gradient_accumulation": "grad-accum",
		"training.max_grad_norm": "clip", "training.weight_decay": "weight-decay",
		"training.adam_beta1": "adam-beta1", "training.adam_beta2": "adam-beta2", "training.adam_epsilon": "adam-eps", "training.eval_steps": "eval-every",
		"training.eval_batches": "eval-batches", "training.save_steps": "save-every",
		"training.save_total_limit": "keep-checkpoints", "training.early_stopping_patience": "patience",
		"training.early_stopping_min_delta": "min-delta", "training.seed": "seed", "training.threads": "threads",
		"training.gpu": "gpu", "training.gradient_checkpointing": "gradient-checkpointing",
		"training.checkpoint_keep": "checkpoint-keep", "output.dir": "out",
	}
}

// applyTrainConfig layers --config FILE and ECOTUNE_* variables under the flags the
// user typed: a value reaches a flag only when the command line did not set it.
func applyTrainConfig(c *cli.Context) error {
	f := &config.File{}
	if path := c.String("config"); path != "" {
		var err error
		// A bad file is a bad input like any other (exit 1); the variables below are
		// part of how the command was called.
		if f, err = config.Load(path); err != nil {
			return err
		}
	}
	if err := f.ApplyEnv(os.Environ()); err != nil {
		return usageError{err}
	}
	flagOf := trainFlagOf()
	typed := map[string]bool{}
	for _, name := range c.LocalFlagNames() {
		typed[name] = true
	}
	for _, kv := range f.Values() {
		name := flagOf[kv.Key]
		if typed[name] {
			continue
		}
		if err := c.Set(name, kv.Value); err != nil {
			return usagef("%s: %s = %q: %v", kv.Source, kv.Key, kv.Value, err)
		}
	}
	return nil
}

// printTrainConfig writes the resolved settings as a configuration file.
func printTrainConfig(c *cli.Context, w io.Writer) {
	flagOf := trainFlagOf()
	section := ""
	for _, k := range config.Keys() {
		s, key, _ := strings.Cut(k.Name, ".")
		if s != section {
			if section != "" {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "[%s]\n", s)
			section = s
		}
		v := c.Value(flagOf[k.Name])
		switch k.Kind {
		case config.String:
			fmt.Fprintf(w, "%s = %q\n", key, fmt.Sprint(v))
		case config.StringList:
			parts := strings.Split(fmt.Sprint(v), ",")
			for i, p := range parts {
				parts[i] = fmt.Sprintf("%q", p)
			}
			fmt.Fprintf(w, "%s = [%s]\n", key, strings.Join(parts, ", "))
		default:
			fmt.Fprintf(w, "%s = %v\n", key, v)
		}
	}
}

// baseForDtype returns the model to train on for --dtype: model itself when its
// weights already have that type (or dtype is empty), else a copy quantized into
// dir (reused when a previous run or a resume made it).
func baseForDtype(ctx context.Context, model, dtype, dir string, w io.Writer) (string, error) {
	if dtype == "" {
		return model, nil
	}
	ft, err := quant.ParseFileType(dtype)
	if err != nil {
		return "", usageError{fmt.Errorf("--dtype: %w", err)}
	}
	want, ok := ft.DefaultType()
	if !ok {
		return "", usagef("--dtype %s: not a type ecotune writes", dtype)
	}
	f, err := gguf.Open(model)
	if err != nil {
		return "", err
	}
	counts := map[gguf.Type]int{}
	for _, t := range f.Tensors {
		if len(t.Dims) == 2 {
			counts[t.Type]++
		}
	}
	f.Close()
	most, n := gguf.Type(0), -1
	for t, k := range counts {
		if k > n || (k == n && t < most) {
			most, n = t, k
		}
	}
	if most == want {
		return model, nil
	}
	out := filepath.Join(dir, "base-"+strings.ToLower(dtype)+".gguf")
	if _, err := os.Stat(out); err == nil {
		fmt.Fprintf(w, "ecotune: using %s (the base quantized to %s)\n", out, ft)
		return out, nil
	}
	fmt.Fprintf(w, "ecotune: quantizing %s to %s for QLoRA → %s\n", model, ft, out)
	sum, err := quant.QuantizeModel(ctx, model, out, quant.Options{Type: ft})
	if err != nil {
		return "", err
	}
	before, after := sum.BitsPerWeight()
	fmt.Fprintf(w, "ecotune: base weights %.2f → %.2f bits per weight\n", before, after)
	return out, nil
}
