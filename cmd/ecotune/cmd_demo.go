package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:      "demo",
		Usage:     "run the whole pipeline on the bundled environmental-science data",
		ArgsUsage: " ",
		Description: `Runs, as ordinary ecotune commands printed before each step: prepare the bundled
data/environment Q&A and chats, make the base model, train a LoRA adapter with a live
progress bar, compare the base with and without the adapter, and check that llama.cpp's
own llama-completion loads the base with the adapter. It ends with a summary: where
the files are, the numbers, and the command to chat with the result.

The base model is a small llama-architecture model written by ` + "`ecotune init`" + ` with
llama.cpp's Llama SentencePiece vocabulary (third_party/llama.cpp/models, fetched by
make). Run it from the repository root after ` + "`make`" + `; ` + "`make demo`" + ` does both.

Example:
   ecotune demo
   ecotune demo --out /tmp/demo --steps 40`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: filepath.Join("out", "demo"), Usage: "output directory"},
			&cli.StringFlag{Name: "data", Value: filepath.Join("data", "environment"), Usage: "dataset to prepare"},
			&cli.StringFlag{Name: "vocab", Value: filepath.Join("third_party", "llama.cpp", "models", "ggml-vocab-llama-spm.gguf"), Usage: "GGUF whose tokenizer the base model takes"},
			&cli.StringFlag{Name: "tools", Value: filepath.Join("build", "cpu", "bin"), Usage: "directory of llama.cpp's tools (llama-completion)"},
			&cli.StringFlag{Name: "config", Value: filepath.Join("configs", "demo.toml"), Usage: "training settings (paths and steps are the demo's)"},
			&cli.IntFlag{Name: "steps", Value: 60, Usage: "LoRA training steps"},
			&cli.IntFlag{Name: "threads", Usage: "CPU threads (default: all)"},
		},
		Action: runDemo,
	}
}

// demoStep is one ecotune command of the demo.
type demoStep struct {
	title string
	args  []string
}

func runDemo(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("demo takes no arguments (got %q)", c.Args().First())
	}
	out, w := c.String("out"), c.App.ErrWriter
	for _, need := range []struct{ path, what string }{
		{c.String("data"), "the bundled dataset (run the demo from the repository root)"},
		{c.String("vocab"), "llama.cpp's vocabulary files (run `make` first: it fetches llama.cpp)"},
		{c.String("config"), "the demo's training settings"},
	} {
		if _, err := os.Stat(need.path); err != nil {
			return fmt.Errorf("demo needs %s: %w", need.what, err)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	dataDir := filepath.Join(out, "data")
	base := filepath.Join(out, "base.gguf")
	runDir := filepath.Join(out, "run")
	adapter := filepath.Join(runDir, "adapter.gguf")
	threads := []string{}
	if n := c.Int("threads"); n > 0 {
		threads = []string{"--threads", strconv.Itoa(n)}
	}
	question := "What is the greenhouse effect?"
	prompt := "### Instruction:\n" + question + "\n\n### Response:\n"

	steps := []demoStep{
		{"prepare the bundled data (Alpaca template, seeded split)", []string{"prepare", c.String("data"),
			"-o", dataDir, "--template", "alpaca", "--seed", "42", "--quiet"}},
		{"make the base model", []string{"init", "--arch", "llama",
			"--dims", "n_embd=128,n_layer=4,n_head=4,n_head_kv=2,n_ff=384,n_ctx=512",
			"--vocab", c.String("vocab"), "--seed", "1", "-o", base}},
		{"train a LoRA adapter on the answers (settings: " + c.String("config") + ")", append([]string{"train",
			"--config", c.String("config"), "-m", base,
			"--data", filepath.Join(dataDir, "train.jsonl"), "--val", filepath.Join(dataDir, "val.jsonl"),
			"--out", runDir, "--steps", strconv.Itoa(c.Int("steps"))}, threads...)},
		{"answer a question with the base model alone", append([]string{"generate", "-m", base,
			"-p", prompt, "-n", "32", "--ctx", "512"}, threads...)},
		{"the same question with the adapter", append([]string{"generate", "-m", base, "--lora", adapter,
			"-p", prompt, "-n", "32", "--ctx", "512"}, threads...)},
	}
	start := time.Now()
	for i, s := range steps {
		fmt.Fprintf(w, "\n[%d/%d] %s\n$ ecotune %s\n", i+1, len(steps)+1, s.title, shellJoin(s.args))
		if code := run(append([]string{"ecotune"}, s.args...), c.App.Writer, w); code != 0 {
			return fmt.Errorf("demo: step %d (ecotune %s) failed with exit code %d", i+1, s.args[0], code)
		}
	}

	tool := filepath.Join(c.String("tools"), "llama-completion")
	llamaArgs := []string{"-m", base, "--lora", adapter, "-p", prompt, "-n", "16", "--temp", "0", "-no-cnv", "--no-warmup", "-v"}
	fmt.Fprintf(w, "\n[%d/%d] check that llama.cpp loads the base with the adapter\n$ %s %s\n", len(steps)+1, len(steps)+1, tool, shellJoin(llamaArgs))
	llamaOut, err := checkLlamaCompletion(c.Context, tool, llamaArgs)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	sum, err := readDemoSummary(dataDir, runDir)
	if err != nil {
		return fmt.Errorf("demo: reading the results: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "\necotune demo finished in %s\n\n", time.Since(start).Round(time.Second))
	fmt.Fprintf(c.App.Writer, "data      %s: %d train, %d validation, %d test examples (of %d records)\n", dataDir, sum.train, sum.val, sum.test, sum.records)
	fmt.Fprintf(c.App.Writer, "base      %s\n", base)
	fmt.Fprintf(c.App.Writer, "adapter   %s (metrics in %s)\n\n", adapter, filepath.Join(runDir, "metrics.jsonl"))
	fmt.Fprintln(c.App.Writer, "| measure | base | with adapter |")
	fmt.Fprintln(c.App.Writer, "| --- | ---: | ---: |")
	fmt.Fprintf(c.App.Writer, "| validation loss (answer tokens) | %.4f | %.4f |\n", sum.valLoss[0], sum.valLoss[1])
	fmt.Fprintf(c.App.Writer, "| validation perplexity | %.1f | %.1f |\n\n", math.Exp(sum.valLoss[0]), math.Exp(sum.valLoss[1]))
	fmt.Fprintf(c.App.Writer, "llama.cpp (llama-completion) loaded the adapter: %s\n\n", firstLine(llamaOut))
	fmt.Fprintf(c.App.Writer, "chat with the result:\n  bin/ecotune generate -m %s --lora %s -p %s\n", base, adapter, bashQuote(prompt))
	return nil
}

// checkLlamaCompletion runs llama.cpp's llama-completion and checks it applied the adapter.
func checkLlamaCompletion(ctx context.Context, tool string, args []string) (string, error) {
	if _, err := os.Stat(tool); err != nil {
		return "", fmt.Errorf("llama.cpp's llama-completion is not built (%w): run `make native`", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("llama-completion failed (%w):\n%s", err, lastLines(string(out), 15))
	}
	for _, line := range strings.Split(string(out), "\n") {
		// With -v, llama_adapter_lora_init reports "loaded N tensors from lora file".
		if strings.Contains(line, "tensors from lora file") {
			_, msg, _ := strings.Cut(line, "llama_adapter_lora_init_impl: ")
			return strings.TrimSpace(msg), nil
		}
	}
	return "", fmt.Errorf("llama-completion ran but did not report loading the adapter:\n%s", lastLines(string(out), 15))
}

// demoSummary holds the numbers the demo ends with.
type demoSummary struct {
	records, train, val, test int
	valLoss                   [2]float64 // before the first step, after the last
}

func readDemoSummary(dataDir, runDir string) (demoSummary, error) {
	var s demoSummary
	b, err := os.ReadFile(filepath.Join(dataDir, "manifest.json"))
	if err != nil {
		return s, err
	}
	var man struct {
		Records int
		Counts  struct{ Train, Val, Test int }
	}
	if err := json.Unmarshal(b, &man); err != nil {
		return s, fmt.Errorf("%s: %w", filepath.Join(dataDir, "manifest.json"), err)
	}
	s.records, s.train, s.val, s.test = man.Records, man.Counts.Train, man.Counts.Val, man.Counts.Test

	path := filepath.Join(runDir, "metrics.jsonl")
	f, err := os.Open(path)
	if err != nil {
		return s, err
	}
	defer f.Close()
	var evals []float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var r struct {
			Kind string  `json:"kind"`
			Loss float64 `json:"loss"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return s, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if r.Kind == "eval" {
			evals = append(evals, r.Loss)
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	if len(evals) < 2 {
		return s, fmt.Errorf("%s holds %d evaluations; the demo needs the first and the last", path, len(evals))
	}
	s.valLoss = [2]float64{evals[0], evals[len(evals)-1]}
	return s, nil
}

// shellJoin quotes args the way a shell user would type them.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'$\\#") {
			a = strconv.Quote(a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// bashQuote writes s as a bash $'...' string, which keeps newlines readable.
func bashQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\t", `\t`)
	return "$'" + r.Replace(s) + "'"
}
