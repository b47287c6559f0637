package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/data"
	"github.com/ecotune/ecotune/jobs"
	"github.com/ecotune/ecotune/serve"
	"github.com/ecotune/ecotune/studio"
	"github.com/ecotune/ecotune/trainer"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "serve a base model and its LoRA adapters over OpenAI's and Ollama's APIs",
		ArgsUsage: " ",
		Description: `Serves one GGUF base model and any number of LoRA adapters. A request picks an
adapter with "model": NAME (OpenAI and Ollama clients alike) or mixes several with
llama-server's "lora": [{"name": NAME, "scale": S}]. Requests are decoded together
(--parallel sequences); adapters load and unload at run time (POST /v1/adapters,
DELETE /v1/adapters/NAME). It binds to 127.0.0.1 unless --host says otherwise.
SIGTERM or Ctrl-C stops accepting, lets streams finish for --grace, then exits 0.
The web studio is at / (chat, side by side, train, runs); --data-dir turns on OpenAI's
fine-tuning API. See docs/serve.md, docs/jobs.md and docs/studio.md.

Example:
   ecotune serve -m base.gguf --adapter climate=run/adapter.gguf --port 8080
   curl localhost:8080/v1/chat/completions -d '{"model":"climate","messages":[{"role":"user","content":"What is albedo?"}]}'`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "base model GGUF", Required: true},
			&cli.StringFlag{Name: "name", Usage: "the base model's name in the APIs (default: its file name without .gguf)"},
			&cli.StringSliceFlag{Name: "adapter", Usage: "NAME=PATH[:SCALE]: a LoRA adapter GGUF served as model NAME (repeatable)"},
			&cli.StringFlag{Name: "adapters-dir", Usage: "load every *.gguf adapter in this folder, named after its file"},
			&cli.StringFlag{Name: "host", Value: "127.0.0.1", Usage: "address to listen on"},
			&cli.IntFlag{Name: "port", Value: 8080, Usage: "port to listen on (0: any free port, printed at start)"},
			&cli.IntFlag{Name: "parallel", Value: 4, Usage: "sequences decoded together"},
			&cli.IntFlag{Name: "ctx", Value: 2048, Usage: "context tokens of each sequence"},
			&cli.IntFlag{Name: "queue", Value: 64, Usage: "requests that may wait for a free sequence (then 429)"},
			&cli.IntFlag{Name: "turn", Value: 4, Usage: "decode steps one adapter set keeps the context while other sets wait"},
			&cli.BoolFlag{Name: "mix-sets", Value: true, Usage: "decode requests on different adapters in one step, adapters applied per sequence; false: each set in turns (see docs/serve.md)"},
			&cli.IntFlag{Name: "threads", Usage: "CPU threads (default: all)"},
			&cli.IntFlag{Name: "gpu-layers", Value: -1, Usage: "layers to offload to a GPU (CUDA builds); -1 all"},
			&cli.StringFlag{Name: "api-key", Usage: "require this key as \"Authorization: Bearer KEY\" (or ECOTUNE_API_KEY)", EnvVars: []string{"ECOTUNE_API_KEY"}},
			&cli.StringFlag{Name: "api-key-file", Usage: "read the API key from this file's first line"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "longest a request may run"},
			&cli.DurationFlag{Name: "grace", Value: 30 * time.Second, Usage: "on SIGTERM, how long streams in flight may take to finish"},
			&cli.Int64Flag{Name: "max-body", Value: 8 << 20, Usage: "largest request body in bytes"},
			&cli.StringFlag{Name: "data-dir", Usage: "turn on fine-tuning jobs (OpenAI's /v1/files and /v1/fine_tuning API); their state lives here"},
			&cli.StringFlag{Name: "runs", Usage: "the studio's Runs tab lists the run folders here (ecotune train --out); jobs write theirs here too (default: DATA-DIR/runs)"},
			&cli.IntFlag{Name: "max-jobs", Value: 1, Usage: "fine-tuning jobs trained at once"},
			&cli.IntFlag{Name: "train-threads", Usage: "CPU threads of each training job (default: half the CPUs, so serving keeps the rest)"},
			&cli.Int64Flag{Name: "max-upload", Value: 256 << 20, Usage: "largest uploaded training file in bytes"},
			&cli.StringSliceFlag{Name: "rpc", Usage: "HOST:PORT[,HOST:PORT...] of llama.cpp rpc-servers that hold the --gpu-layers layers (trusted networks only; see docs/rpc.md)"},
		},
		Action: runServe,
	}
}

// adapterFlag is one --adapter NAME=PATH[:SCALE].
type adapterFlag struct {
	name, path string
	scale      float32
}

func parseAdapterFlag(s string) (adapterFlag, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return adapterFlag{}, fmt.Errorf("--adapter %q: want NAME=PATH[:SCALE]", s)
	}
	path, scale, err := parseAdapterSpec(rest)
	if err != nil {
		return adapterFlag{}, fmt.Errorf("--adapter %q: %w", s, err)
	}
	return adapterFlag{name: name, path: path, scale: scale}, nil
}

// apiKey reads --api-key or --api-key-file.
func apiKey(c *cli.Context) (string, error) {
	key, file := c.String("api-key"), c.String("api-key-file")
	if key != "" && file != "" {
		return "", usagef("give --api-key or --api-key-file, not both")
	}
	if file == "" {
		return key, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--api-key-file: %w", err)
	}
	key = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	if key == "" {
		return "", fmt.Errorf("--api-key-file %s: the first line is empty", file)
	}
	return key, nil
}

func runServe(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("serve takes no arguments (got %q); give the model with -m", c.Args().First())
	}
	var adapters []adapterFlag
	for _, s := range c.StringSlice("adapter") {
		a, err := parseAdapterFlag(s)
		if err != nil {
			return usageError{err}
		}
		adapters = append(adapters, a)
	}
	if dir := c.String("adapters-dir"); dir != "" {
		files, err := filepath.Glob(filepath.Join(dir, "*.gguf"))
		if err != nil {
			return fmt.Errorf("--adapters-dir %s: %w", dir, err)
		}
		if _, err := os.Stat(dir); err != nil {
			return fmt.Errorf("--adapters-dir: %w", err)
		}
		for _, f := range files {
			adapters = append(adapters, adapterFlag{name: strings.TrimSuffix(filepath.Base(f), ".gguf"), path: f, scale: 1})
		}
	}
	key, err := apiKey(c)
	if err != nil {
		return err
	}
	port := c.Int("port")
	if port < 0 || port > 65535 {
		return usagef("--port %d is not a TCP port", port)
	}

	if err := checkModelFile(c.String("model"), trainer.CheckAll, true); err != nil {
		return err
	}
	engine, err := serve.Open(c.String("model"), serve.Options{
		Name: c.String("name"), Parallel: c.Int("parallel"), Ctx: c.Int("ctx"), Threads: c.Int("threads"),
		GPULayers: c.Int("gpu-layers"), Queue: c.Int("queue"), Turn: c.Int("turn"), Mix: c.Bool("mix-sets"), RPC: c.StringSlice("rpc"),
	})
	if err != nil {
		return err
	}
	defer engine.Close()
	for _, a := range adapters {
		if _, err := engine.LoadAdapter(a.name, a.path, a.scale); err != nil {
			return fmt.Errorf("adapter %s (%s): %w", a.name, a.path, err)
		}
	}
	handler := serve.NewHandler(engine, serve.HandlerOptions{
		APIKey: key, MaxBody: c.Int64("max-body"), Timeout: c.Duration("timeout"), Version: version,
	})

	// One mux: the inference API (which checks the key itself), the fine-tuning API behind
	// the same key, and the studio, whose page loads without the key and asks for it.
	mux := http.NewServeMux()
	mux.Handle("/", handler)
	runs := c.String("runs")
	if dir := c.String("data-dir"); dir != "" {
		if runs == "" {
			runs = filepath.Join(dir, "runs")
		}
		mgr, err := openJobs(c, engine, dir, runs)
		if err != nil {
			return err
		}
		defer mgr.Close() // before the engine closes: a running job checkpoints and resumes at the next start
		jobsAPI := handler.RequireKey(mgr.Handler())
		mux.Handle("/v1/files", jobsAPI)
		mux.Handle("/v1/files/", jobsAPI)
		mux.Handle("/v1/fine_tuning/", jobsAPI)
	}
	ui := studio.New(studio.Options{RunsDir: runs, RequireKey: handler.RequireKey, Fallback: handler})
	mux.Handle("GET /{$}", ui)
	mux.Handle("/studio/", ui)
	var root http.Handler = mux

	ln, err := net.Listen("tcp", net.JoinHostPort(c.String("host"), strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: root, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	names := []string{engine.Name()}
	for _, a := range engine.Adapters() {
		names = append(names, a.Name)
	}
	fmt.Fprintf(c.App.Writer, "ecotune serve: listening on http://%s (models: %s; %d parallel, %d tokens each)\n",
		ln.Addr(), strings.Join(names, ", "), engine.Options().Parallel, engine.Options().Ctx)

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	fmt.Fprintf(c.App.Writer, "ecotune serve: stopping; streams in flight have %s to finish\n", c.Duration("grace"))
	handler.Drain()
	grace, cancel := context.WithTimeout(context.Background(), c.Duration("grace"))
	defer cancel()
	if err := srv.Shutdown(grace); err != nil {
		srv.Close() // the grace period ran out: end what is left
	}
	return nil
}

// openJobs starts the fine-tuning service: jobs run `ecotune prepare` and `ecotune train`
// with this very binary, and their adapters are served as soon as they finish.
func openJobs(c *cli.Context, engine *serve.Engine, dir, runs string) (*jobs.Manager, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("--data-dir: finding this program to run training with: %w", err)
	}
	threads := c.Int("train-threads")
	if threads == 0 {
		threads = max(1, runtime.NumCPU()/2)
	}
	tmpl := "model"
	if engine.Model().ChatTemplate() == "" {
		tmpl = data.DefaultTemplate
	}
	return jobs.Open(jobs.Options{
		DataDir: dir, RunsDir: runs, Base: jobs.Base{Name: engine.Name(), Path: c.String("model"), Template: tmpl},
		Runner: jobs.CommandRunner{Path: exe}, Sink: engineSink{engine}, MaxJobs: c.Int("max-jobs"),
		MaxUpload: c.Int64("max-upload"), Threads: threads,
		Logger: slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}

// engineSink serves each finished fine-tune as an adapter of the engine.
type engineSink struct{ e *serve.Engine }

func (s engineSink) AddAdapter(name, path string) error {
	_, err := s.e.LoadAdapter(name, path, 1)
	return err
}
