package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/eval"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:      "demo",
		Usage:     "run the whole pipeline on the bundled environmental-science data",
		ArgsUsage: " ",
		Description: `Runs, as ordinary ecotune commands printed before each step: prepare the bundled
data/environment Q&A and chats; make the base model; train a LoRA adapter with a live
progress bar; evaluate the base and the tuned model on the held-out test split (report
with metrics, answers side by side and training curves); merge the adapter into the
model; export an Ollama Modelfile and a PEFT adapter; check that llama.cpp's own
llama-completion runs the merged model. It ends with a summary: where the files are,
the metric table, and the command to chat with the result.

The base model is ecotune's own: a 4.9M-parameter llama pre-trained by ecotune (full
fine-tuning from random weights) on the training split, committed as
models/ecotune-env-base.weights.gguf without a tokenizer; the demo attaches llama.cpp's
Llama SentencePiece vocabulary (third_party/llama.cpp/models, fetched by make).
scripts/pretrain-demo-base.sh reproduces it. Run the demo from the repository root
after ` + "`make`" + `; ` + "`make demo`" + ` does both.

Example:
   ecotune demo
   ecotune demo --out /tmp/demo --steps 40`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: filepath.Join("out", "demo"), Usage: "output directory"},
			&cli.StringFlag{Name: "data", Value: filepath.Join("data", "environment"), Usage: "dataset to prepare"},
			&cli.StringFlag{Name: "base", Value: filepath.Join("models", "ecotune-env-base.weights.gguf"), Usage: "weights of the base model (no tokenizer); empty: random weights"},
			&cli.StringFlag{Name: "vocab", Value: filepath.Join("third_party", "llama.cpp", "models", "ggml-vocab-llama-spm.gguf"), Usage: "GGUF whose tokenizer the base model takes"},
			&cli.StringFlag{Name: "tools", Value: filepath.Join("build", "cpu", "bin"), Usage: "directory of llama.cpp's tools (llama-completion)"},
			&cli.StringFlag{Name: "config", Value: filepath.Join("configs", "demo.toml"), Usage: "training settings (paths and steps are the demo's)"},
			&cli.IntFlag{Name: "steps", Value: 120, Usage: "LoRA training steps"},
			&cli.IntFlag{Name: "limit", Usage: "evaluate only the first N test examples; 0 all"},
			&cli.IntFlag{Name: "threads", Usage: "CPU threads (default: all)"},
		},
		Action: runDemo,
	}
}

// demoDims are the base model's dimensions (scripts/pretrain-demo-base.sh uses the same).
const demoDims = "n_embd=128,n_layer=4,n_head=4,n_head_kv=2,n_ff=384,n_ctx=512"

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
	needs := []struct{ path, what string }{
		{c.String("data"), "the bundled dataset (run the demo from the repository root)"},
		{c.String("vocab"), "llama.cpp's vocabulary files (run `make` first: it fetches llama.cpp)"},
		{c.String("config"), "the demo's training settings"},
	}
	if b := c.String("base"); b != "" {
		needs = append(needs, struct{ path, what string }{b, "the demo's base model weights"})
	}
	for _, need := range needs {
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
	reportDir := filepath.Join(out, "report")
	merged := filepath.Join(out, "merged.gguf")
	var threads []string
	if n := c.Int("threads"); n > 0 {
		threads = []string{"--threads", strconv.Itoa(n)}
	}
	initArgs := []string{"init", "--arch", "llama", "--dims", demoDims, "--tied", "--vocab", c.String("vocab"),
		"--name", "ecotune-env-base", "-o", base}
	baseTitle := "make the base model (random weights)"
	if b := c.String("base"); b != "" {
		initArgs = append(initArgs, "--weights", b)
		baseTitle = "make the base model: ecotune's pre-trained weights + llama.cpp's vocabulary"
	}
	evalArgs := append([]string{"eval", "--model", base, "--adapter", adapter, "--data", filepath.Join(dataDir, "test.jsonl"),
		"--metrics", filepath.Join(runDir, "metrics.jsonl"), "-o", reportDir, "--max-tokens", "48", "--stop", "\n###"}, threads...)
	if n := c.Int("limit"); n > 0 {
		evalArgs = append(evalArgs, "--limit", strconv.Itoa(n))
	}
	steps := []demoStep{
		{"prepare the bundled data (Alpaca template, seeded split)", []string{"prepare", c.String("data"),
			"-o", dataDir, "--template", "alpaca", "--seed", "42", "--quiet"}},
		{baseTitle, initArgs},
		{"train a LoRA adapter on the answers (settings: " + c.String("config") + ")", append([]string{"train",
			"--config", c.String("config"), "-m", base,
			"--data", filepath.Join(dataDir, "train.jsonl"), "--val", filepath.Join(dataDir, "val.jsonl"),
			"--out", runDir, "--steps", strconv.Itoa(c.Int("steps"))}, threads...)},
		{"evaluate base and tuned on the held-out test split", evalArgs},
		{"merge the adapter into the model", []string{"merge", "--model", base, "--adapter", adapter, "-o", merged, "--quiet"}},
		{"export an Ollama Modelfile (FROM the base, ADAPTER the LoRA)", []string{"export", "ollama", "--model", base,
			"--adapter", adapter, "-o", filepath.Join(out, "ollama"), "--format", "alpaca"}},
		{"export the adapter for Hugging Face PEFT", []string{"export", "peft", "--adapter", adapter, "--model", base,
			"-o", filepath.Join(out, "peft")}},
	}
	// The demo owns its directory: a previous demo's run is replaced, not resumed.
	for _, d := range []string{runDir, reportDir} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	total := len(steps) + 1
	start := time.Now()
	for i, s := range steps {
		fmt.Fprintf(w, "\n[%d/%d] %s\n$ ecotune %s\n", i+1, total, s.title, shellJoin(s.args))
		if code := run(append([]string{"ecotune"}, s.args...), c.App.Writer, w); code != 0 {
			return fmt.Errorf("demo: step %d (ecotune %s) failed with exit code %d", i+1, s.args[0], code)
		}
	}

	prompt := "### Instruction:\nWhat is the greenhouse effect?\n\n### Response:\n"
	tool := filepath.Join(c.String("tools"), "llama-completion")
	llamaArgs := []string{"-m", merged, "-p", prompt, "-n", "32", "--temp", "0", "-no-cnv", "--no-warmup"}
	fmt.Fprintf(w, "\n[%d/%d] check that llama.cpp runs the merged model\n$ %s %s\n", total, total, tool, shellJoin(llamaArgs))
	answer, err := llamaCompletion(c.Context, tool, llamaArgs, prompt)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(w, "%s\n", answer)

	sum, err := readDemoSummary(dataDir, reportDir)
	if err != nil {
		return fmt.Errorf("demo: reading the results: %w", err)
	}
	o := c.App.Writer
	fmt.Fprintf(o, "\necotune demo finished in %s\n\n", time.Since(start).Round(time.Second))
	fmt.Fprintf(o, "data      %s: %d train, %d validation, %d test examples (of %d records)\n", dataDir, sum.train, sum.val, sum.test, sum.records)
	fmt.Fprintf(o, "base      %s\n", base)
	fmt.Fprintf(o, "adapter   %s (training curves: %s)\n", adapter, filepath.Join(runDir, "loss.svg"))
	fmt.Fprintf(o, "report    %s\n", filepath.Join(reportDir, "report.html"))
	fmt.Fprintf(o, "merged    %s (llama.cpp runs it)\n", merged)
	fmt.Fprintf(o, "exports   %s, %s\n\n", filepath.Join(out, "ollama", "Modelfile"), filepath.Join(out, "peft"))
	fmt.Fprintf(o, "held-out test split, %d examples:\n\n", sum.examples)
	fmt.Fprintln(o, "| model | exact match | token F1 | BLEU | ROUGE-L | answer loss | perplexity |")
	fmt.Fprintln(o, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range sum.rows {
		fmt.Fprintf(o, "| %s | %.2f | %.2f | %.2f | %.2f | %.4f | %.1f |\n", r.name, r.em, r.f1, r.bleu, r.rougeL, r.loss, r.ppl)
	}
	fmt.Fprintf(o, "\nchat with the result:\n  bin/ecotune chat -m %s --format alpaca\n", merged)
	fmt.Fprintf(o, "or ask once:\n  bin/ecotune generate -m %s -p %s\n", merged, bashQuote(prompt))
	fmt.Fprintf(o, "or serve base and adapter side by side (OpenAI and Ollama APIs, web studio at http://127.0.0.1:8080/):\n  bin/ecotune serve -m %s --adapter tuned=%s\n", base, adapter)
	return nil
}

// llamaCompletion runs llama.cpp's llama-completion and returns its continuation of prompt.
func llamaCompletion(ctx context.Context, tool string, args []string, prompt string) (string, error) {
	if _, err := os.Stat(tool); err != nil {
		return "", fmt.Errorf("llama.cpp's llama-completion is not built (%w): run `make native`", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("llama-completion failed (%w):\n%s", err, lastLines(stderr.String(), 15))
	}
	text := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(text, strings.TrimSpace(prompt)[:10]) {
		return "", fmt.Errorf("llama-completion printed no continuation of the prompt:\n%s", lastLines(stdout.String()+stderr.String(), 15))
	}
	return text, nil
}

// demoSummary holds the numbers the demo ends with.
type demoSummary struct {
	records, train, val, test int
	examples                  int
	rows                      []demoRow
}

type demoRow struct {
	name                 string
	em, f1, bleu, rougeL float64
	loss, ppl            float64
}

func readDemoSummary(dataDir, reportDir string) (demoSummary, error) {
	var s demoSummary
	manPath := filepath.Join(dataDir, "manifest.json")
	b, err := os.ReadFile(manPath)
	if err != nil {
		return s, err
	}
	var man struct {
		Records int
		Counts  struct{ Train, Val, Test int }
	}
	if err := json.Unmarshal(b, &man); err != nil {
		return s, fmt.Errorf("%s: %w", manPath, err)
	}
	s.records, s.train, s.val, s.test = man.Records, man.Counts.Train, man.Counts.Val, man.Counts.Test

	repPath := filepath.Join(reportDir, "report.json")
	if b, err = os.ReadFile(repPath); err != nil {
		return s, err
	}
	var rep eval.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return s, fmt.Errorf("%s: %w", repPath, err)
	}
	if len(rep.Systems) < 2 {
		return s, fmt.Errorf("%s holds %d systems; the demo evaluates the base and the tuned model", repPath, len(rep.Systems))
	}
	s.examples = len(rep.Examples)
	for i, sys := range rep.Systems {
		r := demoRow{name: "base", em: sys.Table.ExactMatch, f1: sys.Table.F1, bleu: sys.Table.BLEU.Score, rougeL: sys.Table.RougeL}
		if i > 0 {
			r.name = "tuned (LoRA)"
		}
		if sys.Loss != nil {
			r.loss, r.ppl = sys.Loss.MeanNLL, sys.Loss.Perplexity
		}
		s.rows = append(s.rows, r)
	}
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
