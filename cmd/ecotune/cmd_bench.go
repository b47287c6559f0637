package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/quant"
	"github.com/ecotune/ecotune/trainer"
)

// benchShapes are the model shapes of the project's published figures (../shared/NOTES.md).
func benchShapes() map[string]factory.Spec {
	return map[string]factory.Spec{
		"24m":  {Arch: "llama", Embd: 288, Layers: 6, Heads: 6, HeadsKV: 6, FF: 768},
		"143m": {Arch: "llama", Embd: 576, Layers: 30, Heads: 9, HeadsKV: 3, FF: 1536},
		// Llama 3.2 3B's shape, the model QLoRA users fine-tune on a laptop: tied
		// embeddings and Llama 3's vocabulary of 128,256 tokens, written F16 and then
		// quantized to Q4_K_M (benchQuant; F32 would be a 13 GB file).
		"3b": {Arch: "llama", Embd: 3072, Layers: 28, Heads: 24, HeadsKV: 8, FF: 8192, RopeBase: 500000,
			TiedEmbeddings: true, Type: gguf.TypeF16, VocabFile: filepath.Join("third_party", "llama.cpp", "models", "ggml-vocab-llama-bpe.gguf")},
	}
}

// benchQuant is the type (ecotune quantize --type) a shape's model is quantized to
// once written, for the shapes measured quantized.
var benchQuant = map[string]string{"3b": "q4_k"}

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:      "bench",
		Usage:     "measure LoRA training speed against llama.cpp's prompt processing on the same model",
		ArgsUsage: " ",
		Description: `Measures, in one run on the same model and threads: llama.cpp's llama-bench pp512
(prompt processing, tokens/s: a forward pass, the ceiling of any trainer), ecotune's
LoRA training throughput on 512-token sequences (forward, backward, AdamW; the first
step, which builds the graph, is not counted) and, with --full, full fine-tuning. Ratios
are ecotune's tokens/s over pp512's; a LoRA step costs about two forward passes, so 0.5
is the ideal.

--shape 24m or 143m writes the random-weight llama shapes of the project's published
figures (llama.cpp's Llama vocabulary), 3b Llama 3.2 3B's shape quantized to Q4_K_M;
--model measures any GGUF instead. The LoRA run's peak resident memory is reported too.

--torch also runs the peer a user would pick instead of ecotune: PyTorch LoRA training
of the same shape (scripts/bench_torch_lora.py, in the style of HF transformers' llama
and PEFT) with the same rank, targets, threads and sequence length, and compares tokens/s
and peak memory. It needs python3 with torch (Debian: apt-get install python3-torch
libopenblas0-pthread); without them it prints why and the rest of the bench stands.

--serve measures inference serving instead: ecotune serve and llama.cpp's llama-server
on the same model (--shape, 24m by default, or --model), three random LoRA adapters,
threads, --parallel, prompts and --max-tokens, greedy and streamed, at each --clients
count with one adapter and the three mixed: aggregate tokens/s and time to first token.

Example:
   ecotune bench --shape 24m --threads 2
   ecotune bench --serve --threads 2 --clients 1,8,32
   ecotune bench --shape 143m --threads 2 --torch
   ecotune bench --model my-model.gguf --steps 5 --json`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "GGUF model to measure"},
			&cli.StringFlag{Name: "shape", Usage: "instead of --model: 24m, 143m or 3b"},
			&cli.StringFlag{Name: "vocab", Value: filepath.Join("third_party", "llama.cpp", "models", "ggml-vocab-llama-spm.gguf"), Usage: "tokenizer for --shape (3b: llama-bpe unless given)"},
			&cli.StringFlag{Name: "tools", Value: filepath.Join("build", "cpu", "bin"), Usage: "directory of llama.cpp's tools (llama-bench)"},
			&cli.IntFlag{Name: "steps", Value: 4, Usage: "timed training steps (after one untimed)"},
			&cli.IntFlag{Name: "seq-len", Value: 512, Usage: "tokens per training sequence and prompt length of llama-bench"},
			&cli.IntFlag{Name: "lora.r", Value: 8, Usage: "LoRA rank"},
			&cli.StringFlag{Name: "lora.targets", Value: "all", Usage: "modules to adapt"},
			&cli.BoolFlag{Name: "finetune", Usage: "also run llama.cpp's llama-finetune (full fine-tuning) on the same model and sequence length"},
			&cli.BoolFlag{Name: "gradient-checkpointing", Usage: "train the LoRA with gradient checkpointing"},
			&cli.StringFlag{Name: "checkpoint-keep", Value: trainer.CheckpointKeepNone, Usage: "with --gradient-checkpointing, products stored instead of recomputed (see ecotune train --checkpoint-keep)"},
			&cli.StringFlag{Name: "keep-transposed", Value: "auto", Usage: "transposed copies of the weights for the LoRA run: on, off or auto (see ecotune train --keep-transposed)"},
			&cli.BoolFlag{Name: "gpu", Usage: "train on GPU 0 (a CUDA build) and give llama-bench every layer (-ngl 99); without it both run on the CPU (-ngl 0)"},
			&cli.BoolFlag{Name: "generic-ops", Usage: "build attention, the adapters and the loss from ggml's generic ops instead of ecotune's fused CPU ops, for comparison"},
			&cli.StringFlag{Name: "compute-dtype", Usage: "type of the backward pass's products through the frozen weights: a quantized base dequantized to it, an F32 base's weights rounded to it (see ecotune train --compute-dtype)"},
			&cli.BoolFlag{Name: "profile", Usage: "also run one more LoRA step node by node and print the time per op"},
			&cli.BoolFlag{Name: "full", Usage: "also measure full fine-tuning (F32 weights)"},
			&cli.StringFlag{Name: "qlora", Usage: "also compare peak memory of LoRA training on the model and on copies quantized to these types (comma-separated, e.g. q4_k,iq4_nl), each in its own process"},
			&cli.BoolFlag{Name: "torch", Usage: "also run a PyTorch LoRA run of the same shape, threads and sequence length (the peer a user would pick; on the CPU) and compare tokens/s and peak memory"},
			&cli.StringFlag{Name: "python", Value: debianPython, Usage: "Python interpreter with torch for --torch (Debian's, by default)"},
			&cli.StringFlag{Name: "torch-script", Value: filepath.Join("scripts", "bench_torch_lora.py"), Usage: "the PyTorch peer's script for --torch"},
			&cli.IntFlag{Name: "threads", Value: runtime.NumCPU(), Usage: "CPU threads for both"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		}, serveBenchFlags()...),
		Action: runBench,
	}
}

// benchResult is one measurement run.
type benchResult struct {
	Model          string  `json:"model"`
	Params         int64   `json:"params"`
	Threads        int     `json:"threads"`
	SeqLen         int     `json:"seq_len"`
	Kernels        string  `json:"kernels"` // ggml.KernelTarget: the instruction set ecotune's fused ops were built for
	LlamaPP        float64 `json:"llama_bench_pp_tokens_per_sec"`
	LoRA           float64 `json:"lora_tokens_per_sec"`
	LoRARatio      float64 `json:"lora_ratio_to_pp"`
	Full           float64 `json:"full_tokens_per_sec,omitempty"`
	FullRatio      float64 `json:"full_ratio_to_pp,omitempty"`
	LoRAStepSecond float64 `json:"lora_seconds_per_step"`
	KeepTransposed bool    `json:"keep_transposed"`
	GenericOps     bool    `json:"generic_ops,omitempty"`
	ComputeType    string  `json:"compute_dtype,omitempty"` // of the backward pass's products through the base
	GPU            bool    `json:"gpu,omitempty"`
	// Finetune is llama.cpp's llama-finetune (full fine-tuning) on the same model and
	// sequence length (--finetune), or FinetuneFailure its error when it cannot run.
	Finetune        float64 `json:"llama_finetune_tokens_per_sec,omitempty"`
	LoRAVsFinetune  float64 `json:"lora_ratio_to_llama_finetune,omitempty"`
	FinetuneFailure string  `json:"llama_finetune_failure,omitempty"`
	// LoRAPeakRSS is the process's peak resident memory during the LoRA run: VmHWM,
	// reset to what the process held just before it (0 where the kernel cannot reset it).
	LoRAPeakRSS int64 `json:"lora_peak_rss_bytes,omitempty"`
	// Torch is the PyTorch peer's LoRA run of the same shape (--torch), or
	// TorchFailure why it could not run.
	Torch            float64 `json:"torch_lora_tokens_per_sec,omitempty"`
	LoRAVsTorch      float64 `json:"lora_ratio_to_torch,omitempty"`
	TorchPeakRSS     int64   `json:"torch_peak_rss_bytes,omitempty"`
	TorchVersion     string  `json:"torch_version,omitempty"`
	TorchBLAS        string  `json:"torch_blas,omitempty"`
	TorchBLASThreads string  `json:"torch_openblas_threads,omitempty"`
	TorchFailure     string  `json:"torch_failure,omitempty"`
	// Memory compares LoRA training on the model and on quantized copies (--qlora).
	Memory []memoryResult `json:"qlora_memory,omitempty"`
	// Profile is one LoRA step's time per op (--profile).
	Profile []ggml.OpTime `json:"lora_step_profile,omitempty"`
}

func runBench(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("bench takes no arguments (got %q)", c.Args().First())
	}
	if c.Bool("serve") {
		return runServeBench(c)
	}
	model, shape := c.String("model"), c.String("shape")
	if (model == "") == (shape == "") {
		return usagef("give --model FILE or --shape 24m|143m|3b")
	}
	if c.Int("steps") < 1 || c.Int("seq-len") < 2 || c.Int("threads") < 1 {
		return usagef("--steps, --threads must be ≥ 1 and --seq-len ≥ 2")
	}
	w := c.App.ErrWriter
	if shape != "" {
		spec, ok := benchShapes()[shape]
		if !ok {
			return usagef("--shape %q: want 24m, 143m or 3b", shape)
		}
		if spec.VocabFile == "" || c.IsSet("vocab") {
			spec.VocabFile = c.String("vocab")
		}
		spec.Seed = 1
		dir, err := os.MkdirTemp("", "ecotune-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		model = filepath.Join(dir, shape+".gguf")
		fmt.Fprintf(w, "bench: writing the %s shape\n", shape)
		if err := factory.Init(spec, model); err != nil {
			return err
		}
		if q := benchQuant[shape]; q != "" {
			if model, err = quantizeShape(c.Context, model, q, w); err != nil {
				return err
			}
		}
	}
	res := benchResult{Model: model, Threads: c.Int("threads"), SeqLen: c.Int("seq-len"), Kernels: ggml.KernelTarget()}
	if shape != "" {
		res.Model = shape
	}
	// llama-bench is C all the way: a model it cannot load may abort it mid-output.
	if err := checkModelFile(model, trainer.CheckAll, false); err != nil {
		return err
	}
	var err error
	fmt.Fprintf(w, "bench: llama-bench pp%d, %d threads\n", res.SeqLen, res.Threads)
	if res.LlamaPP, err = llamaBenchPP(c.Context, filepath.Join(c.String("tools"), "llama-bench"), model, res.SeqLen, res.Threads, c.Bool("gpu")); err != nil {
		return err
	}
	cfg := trainer.Config{LoRA: trainer.LoRAConfig{Rank: c.Int("lora.r"), Alpha: float32(2 * c.Int("lora.r")), Targets: []string{c.String("lora.targets")}},
		GradientCheckpointing: c.Bool("gradient-checkpointing"), CheckpointKeep: c.String("checkpoint-keep")}
	fmt.Fprintf(w, "bench: ecotune LoRA training, %d+1 steps of %d tokens\n", c.Int("steps"), res.SeqLen)
	var perStep float64
	var prof *[]ggml.OpTime
	if c.Bool("profile") {
		prof = &res.Profile
	}
	keepT, err := keepTransposed(c.String("keep-transposed"), model, c.Bool("gpu"))
	if err != nil {
		return err
	}
	res.KeepTransposed = keepT
	res.GenericOps = c.Bool("generic-ops")
	res.GPU = c.Bool("gpu")
	opts := trainer.ModelOptions{Threads: res.Threads, GPU: res.GPU, KeepTransposed: keepT, GenericOps: res.GenericOps,
		ComputeType: c.String("compute-dtype")}
	// The peak is the whole process's (Go runtime, ggml, weights, the run), as the
	// peer's is its whole Python process's; what the bench did before (llama-bench is
	// a child, the --shape model is written a tensor at a time) is reset away.
	reset := resetPeakRSS()
	lora, err := trainThroughput(c.Context, model, cfg, opts, res.SeqLen, c.Int("steps"), prof)
	if err != nil {
		return err
	}
	if reset {
		res.LoRAPeakRSS = peakRSS()
	}
	res.LoRA, perStep, res.Params, res.ComputeType = lora.tps, lora.perStep, lora.params, lora.computeType
	res.LoRAStepSecond = perStep
	res.LoRARatio = res.LoRA / res.LlamaPP
	if c.Bool("finetune") {
		fmt.Fprintf(w, "bench: llama-finetune, %d threads\n", res.Threads)
		if res.Finetune, res.FinetuneFailure, err = llamaFinetune(c.Context, filepath.Join(c.String("tools"), "llama-finetune"), model, res.SeqLen, 24, res.Threads); err != nil {
			return err
		}
		if res.Finetune > 0 {
			res.LoRAVsFinetune = res.LoRA / res.Finetune
		}
	}
	if c.Bool("torch") {
		fmt.Fprintf(w, "bench: PyTorch LoRA training (the peer), %d+1 steps of %d tokens, %d threads\n", c.Int("steps"), res.SeqLen, res.Threads)
		run := torchRun{Rank: cfg.LoRA.Rank, Alpha: cfg.LoRA.Alpha, Targets: lora.targets, LR: trainer.DefaultLR,
			SeqLen: res.SeqLen, Steps: c.Int("steps"), Threads: res.Threads}
		t, failure, err := torchLoRA(c.Context, c.String("python"), c.String("torch-script"), model, run)
		if err != nil {
			return err
		}
		res.TorchFailure, res.TorchVersion, res.TorchBLAS, res.TorchBLASThreads = failure, t.Version, t.BLAS, t.BLASThreads
		if failure == "" {
			res.Torch, res.TorchPeakRSS = t.TokensPerSec, t.PeakRSS
			res.LoRAVsTorch = res.LoRA / res.Torch
		}
	}
	if c.Bool("full") {
		fmt.Fprintf(w, "bench: ecotune full fine-tuning, %d+1 steps of %d tokens\n", c.Int("steps"), res.SeqLen)
		cfg.Method = trainer.MethodFull
		full := trainer.ModelOptions{Threads: res.Threads, GPU: res.GPU, Trainable: true, GenericOps: res.GenericOps}
		ft, err := trainThroughput(c.Context, model, cfg, full, res.SeqLen, c.Int("steps"), nil)
		if err != nil {
			return err
		}
		res.Full = ft.tps
		res.FullRatio = res.Full / res.LlamaPP
	}
	if types := c.String("qlora"); types != "" {
		if res.Memory, err = qloraMemory(c.Context, model, strings.Split(types, ","), res.Threads, c.String("keep-transposed"), w); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	o := c.App.Writer
	fmt.Fprintf(o, "| model | params | threads | llama-bench pp%d tok/s | ecotune LoRA tok/s | ratio |", res.SeqLen)
	if res.Full > 0 {
		fmt.Fprint(o, " full FT tok/s | ratio |")
	}
	if res.Torch > 0 {
		fmt.Fprint(o, " torch LoRA tok/s | ecotune ÷ torch | ecotune LoRA peak RSS | torch peak RSS |")
	}
	fmt.Fprint(o, "\n| --- | ---: | ---: | ---: | ---: | ---: |")
	if res.Full > 0 {
		fmt.Fprint(o, " ---: | ---: |")
	}
	if res.Torch > 0 {
		fmt.Fprint(o, " ---: | ---: | ---: | ---: |")
	}
	fmt.Fprintf(o, "\n| %s | %.1fM | %d | %.1f | %.1f | %.3f |", res.Model, float64(res.Params)/1e6, res.Threads, res.LlamaPP, res.LoRA, res.LoRARatio)
	if res.Full > 0 {
		fmt.Fprintf(o, " %.1f | %.3f |", res.Full, res.FullRatio)
	}
	if res.Torch > 0 {
		ours := "—"
		if res.LoRAPeakRSS > 0 {
			ours = mib(res.LoRAPeakRSS)
		}
		fmt.Fprintf(o, " %.1f | %.2f× | %s | %s |", res.Torch, res.LoRAVsTorch, ours, mib(res.TorchPeakRSS))
	}
	fmt.Fprintln(o)
	fmt.Fprintf(o, "\n(ecotune's fused CPU kernels: %s)\n", res.Kernels)
	if res.Torch > 0 {
		fmt.Fprintf(o, "\n(the PyTorch peer: torch %s, F32 weights, BLAS %s with OPENBLAS_NUM_THREADS=%s; peak RSS is each whole process's)\n",
			res.TorchVersion, res.TorchBLAS, res.TorchBLASThreads)
		if referenceBLAS(res.TorchBLAS) {
			fmt.Fprintf(o, "(torch ran on the reference BLAS, which is slow: %s)\n", torchInstall)
		}
	}
	if res.TorchFailure != "" {
		fmt.Fprintf(o, "\nthe PyTorch peer did not run: %s\n", res.TorchFailure)
	}
	if res.Torch == 0 && res.LoRAPeakRSS > 0 {
		fmt.Fprintf(o, "\npeak resident memory of the LoRA run: %s\n", mib(res.LoRAPeakRSS))
	}
	if res.GenericOps {
		fmt.Fprintln(o, "\n(attention, adapters and loss built from ggml's generic ops: --generic-ops)")
	}
	if res.KeepTransposed {
		fmt.Fprintln(o, "\n(the LoRA run kept transposed copies of the weights: --keep-transposed)")
	}
	switch {
	case res.Finetune > 0:
		fmt.Fprintf(o, "\nllama-finetune (full fine-tuning, %d-token sequences): %.1f tok/s; ecotune LoRA is %.2f× that\n", res.SeqLen, res.Finetune, res.LoRAVsFinetune)
	case res.FinetuneFailure != "":
		fmt.Fprintf(o, "\nllama-finetune fails on this model: %s\n", res.FinetuneFailure)
	}
	if len(res.Profile) > 0 {
		printProfile(o, res.Profile)
	}
	if len(res.Memory) > 0 {
		fmt.Fprintln(o, "\n| base | file | peak RSS | RSS saved vs the first | file saved vs the first | validation loss |")
		fmt.Fprintln(o, "| --- | ---: | ---: | ---: | ---: | --- |")
		for _, r := range res.Memory {
			m0 := res.Memory[0]
			fmt.Fprintf(o, "| %s | %s | %s | %s | %s | %.4f → %.4f |\n", r.Type, mib(r.FileBytes), mib(r.PeakRSS),
				mib(m0.PeakRSS-r.PeakRSS), mib(m0.FileBytes-r.FileBytes), r.LossFirst, r.LossLast)
		}
	}
	return nil
}

var peakLine = regexp.MustCompile(`peak memory ([0-9.]+) MiB`)

// memoryResult is the peak memory of one LoRA training process.
type memoryResult struct {
	Type      string  `json:"type"`
	FileBytes int64   `json:"file_bytes"`
	PeakRSS   int64   `json:"peak_rss_bytes"`
	LossFirst float64 `json:"val_loss_first"`
	LossLast  float64 `json:"val_loss_last"`
}

// qloraMemory trains a LoRA for a few steps on model and on copies quantized to each
// type, each in a child ecotune process, and returns their peak resident memory and
// validation losses: QLoRA's promise is that memory falls by what the weights shrink.
// keepT is the children's --keep-transposed.
func qloraMemory(ctx context.Context, model string, types []string, threads int, keepT string, w io.Writer) ([]memoryResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ecotune-qlora-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	corpus := filepath.Join(dir, "corpus.txt")
	var text strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&text, "Forests store carbon in wood and soil; wetlands filter water; reef %d shelters fish. ", i)
	}
	if err := os.WriteFile(corpus, []byte(text.String()), 0o644); err != nil {
		return nil, err
	}
	var out []memoryResult
	for _, t := range append([]string{"base"}, types...) {
		path := model
		if t != "base" {
			ft, err := quant.ParseFileType(t)
			if err != nil {
				return nil, usageError{fmt.Errorf("--qlora: %w", err)}
			}
			path = filepath.Join(dir, t+".gguf")
			if _, err := quant.QuantizeModel(ctx, model, path, quant.Options{Type: ft}); err != nil {
				return nil, err
			}
		}
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		run := filepath.Join(dir, "run-"+t)
		fmt.Fprintf(w, "bench: LoRA training on the %s model in a child process\n", t)
		cmd := exec.CommandContext(ctx, exe, "train", "-m", path, "--data", corpus, "--out", run, "--steps", "4",
			"--seq-len", "64", "--batch", "2", "--eval-every", "4", "--val-split", "0.2", "--lr", "1e-3",
			"--lora.targets", "all", "--save-every", "0", "--threads", fmt.Sprint(threads), "--keep-transposed", keepT, "-q")
		msg, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("bench: training on the %s model: %w\n%s", t, err, lastLines(string(msg), 10))
		}
		// The child's own report: the rusage a parent gets also counts the parent's
		// memory at the time it started the child.
		m := peakLine.FindStringSubmatch(string(msg))
		if m == nil {
			return nil, fmt.Errorf("bench: ecotune train reported no peak memory (a system without /proc?):\n%s", lastLines(string(msg), 5))
		}
		peak, _ := strconv.ParseFloat(m[1], 64)
		r := memoryResult{Type: t, FileBytes: st.Size(), PeakRSS: int64(peak * (1 << 20))}
		if r.LossFirst, r.LossLast, err = evalLosses(filepath.Join(run, "metrics.jsonl")); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// quantizeShape quantizes the shape's model f16 to typ beside it, removes f16 and returns
// the new file's path.
func quantizeShape(ctx context.Context, f16, typ string, w io.Writer) (string, error) {
	ft, err := quant.ParseFileType(typ)
	if err != nil {
		return "", err
	}
	out := strings.TrimSuffix(f16, ".gguf") + "-" + typ + ".gguf"
	fmt.Fprintf(w, "bench: quantizing it to %s\n", typ)
	if _, err := quant.QuantizeModel(ctx, f16, out, quant.Options{Type: ft}); err != nil {
		return "", err
	}
	return out, os.Remove(f16)
}

// evalLosses returns the first and last validation loss of a metrics.jsonl.
func evalLosses(path string) (first, last float64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	n := 0
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r struct {
			Kind string  `json:"kind"`
			Loss float64 `json:"loss"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return 0, 0, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		if r.Kind == "eval" {
			if n == 0 {
				first = r.Loss
			}
			last = r.Loss
			n++
		}
	}
	if n < 2 {
		return 0, 0, fmt.Errorf("%s: %d evaluations, need 2", path, n)
	}
	return first, last, nil
}

// llamaBenchPP runs llama-bench's prompt-processing test and returns its mean tokens/s.
func llamaBenchPP(ctx context.Context, tool, model string, n, threads int, gpu bool) (float64, error) {
	if _, err := os.Stat(tool); err != nil {
		return 0, fmt.Errorf("llama.cpp's llama-bench is not built (%w): run `make native`", err)
	}
	ngl := "0"
	if gpu {
		ngl = "99"
	}
	out, err := exec.CommandContext(ctx, tool, "-m", model, "-p", fmt.Sprint(n), "-n", "0", "-t", fmt.Sprint(threads),
		"-ngl", ngl, "-r", "3", "-o", "json").Output()
	if err != nil {
		return 0, fmt.Errorf("llama-bench: %w", err)
	}
	var rows []struct {
		NPrompt int     `json:"n_prompt"`
		AvgTS   float64 `json:"avg_ts"`
	}
	if err := json.Unmarshal(out, &rows); err != nil || len(rows) == 0 {
		return 0, fmt.Errorf("llama-bench printed no result (%v): %s", err, lastLines(string(out), 5))
	}
	return rows[0].AvgTS, nil
}

// throughput is what trainThroughput measured: tokens/s over the steps after the
// first, seconds per step, the model's parameter count, the type its quantized
// weights were dequantized to for the backward pass and the LoRA's targets.
type throughput struct {
	tps, perStep float64
	params       int64
	computeType  string
	targets      []string // the LoRA's target modules, GGUF names
}

// trainThroughput trains on random sequences of seqLen tokens (every token a target).
// With prof non-nil, one more step after the timed ones runs node by node and its time
// per op is stored there.
func trainThroughput(ctx context.Context, path string, cfg trainer.Config, opts trainer.ModelOptions, seqLen, steps int, prof *[]ggml.OpTime) (throughput, error) {
	m, err := trainer.LoadModel(path, opts)
	if err != nil {
		return throughput{}, err
	}
	defer m.Close()
	r := rand.New(rand.NewPCG(1, 2))
	var data trainer.Examples
	for range steps + 2 {
		ids := make([]int32, seqLen+1)
		mask := make([]bool, seqLen+1)
		for i := range ids {
			ids[i], mask[i] = int32(r.IntN(m.HP.Vocab)), true
		}
		data = append(data, trainer.Example{IDs: ids, Mask: mask})
	}
	cfg.Steps, cfg.BatchSize, cfg.SeqLen, cfg.EvalEvery = steps+1, 1, seqLen, -1
	if prof != nil {
		cfg.Steps++
		cfg.ProfileStep = cfg.Steps
	}
	var first, last time.Time
	cfg.OnStep = func(s trainer.StepInfo) {
		switch s.Step {
		case 1:
			first = time.Now()
		case steps + 1:
			last = time.Now()
		}
		if s.Profile != nil {
			*prof = s.Profile
		}
	}
	if _, err := trainer.Train(ctx, m, cfg, data, nil); err != nil {
		return throughput{}, err
	}
	elapsed := last.Sub(first).Seconds()
	targets, err := loraTargets(m, cfg.LoRA.Targets)
	if err != nil && cfg.Method != trainer.MethodFull {
		return throughput{}, err
	}
	return throughput{float64(steps*seqLen) / elapsed, elapsed / float64(steps), m.Params(), m.ComputeType().String(), targets}, nil
}

// printProfile prints a profiled LoRA step's time per op, longest first, as a share of
// the step.
func printProfile(w io.Writer, ops []ggml.OpTime) {
	var total time.Duration
	for _, o := range ops {
		total += o.Time
	}
	fmt.Fprintf(w, "\nOne LoRA step node by node (%.0f ms):\n\n| op | nodes | ms | share |\n| --- | ---: | ---: | ---: |\n", total.Seconds()*1e3)
	for _, o := range ops {
		if share := float64(o.Time) / float64(total); share >= 0.005 {
			fmt.Fprintf(w, "| %s | %d | %.1f | %.1f%% |\n", o.Op, o.Nodes, o.Time.Seconds()*1e3, 100*share)
		}
	}
}
