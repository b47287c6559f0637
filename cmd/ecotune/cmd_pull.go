package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/hub"
)

func pullCommand() *cli.Command {
	return &cli.Command{
		Name:      "pull",
		Usage:     "download a GGUF file, or a checkpoint folder, from a Hugging Face style hub",
		ArgsUsage: "OWNER/REPO[@REVISION][:FILE]",
		Description: `Downloads one file of a hub repository into --out. An interrupted download resumes
from its .part file; dropped connections, 429 and 5xx answers are retried with
exponential backoff and jitter; the file is checked against the sha256 the hub publishes
for it (or --sha256) and gets its final name only when complete and verified.

HF_TOKEN (from the environment or a .env file) is sent for gated or private repositories
and never printed. HF_ENDPOINT or --endpoint selects another hub or a mirror.

Without :FILE, the checkpoint folder of the repository is fetched into
--out/NAME: config.json, the tokenizer files, the chat template, the index and
every safetensors shard, each resumed and verified the same way. train, eval
and generate take that folder as --model ("ecotune convert" makes a GGUF of it).

Example:
   ecotune pull HuggingFaceTB/SmolLM2-135M-Instruct -o models
   ecotune pull bartowski/SmolLM2-135M-Instruct-GGUF:SmolLM2-135M-Instruct-Q8_0.gguf -o models`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: "models", Usage: "directory to write into"},
			&cli.StringFlag{Name: "sha256", Usage: "expected sha256 (hex); default: the hub's"},
			&cli.StringFlag{Name: "endpoint", EnvVars: []string{"HF_ENDPOINT"}, Value: hub.DefaultEndpoint, Usage: "hub address"},
			&cli.IntFlag{Name: "retries", Value: hub.DefaultRetries, Usage: "retries after the first attempt"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("pull takes one OWNER/REPO[:FILE] (got %d arguments)", c.NArg())
			}
			w := c.App.ErrWriter
			cl := hub.Client{Endpoint: c.String("endpoint"), Token: os.Getenv("HF_TOKEN"), SHA256: c.String("sha256"),
				Retries: c.Int("retries"), Log: func(format string, args ...any) { fmt.Fprintf(w, "\n"+format+"\n", args...) }}
			if cl.Retries == 0 {
				cl.Retries = -1
			}
			if !strings.Contains(c.Args().First(), ":") {
				repo, err := hub.ParseRepo(c.Args().First())
				if err != nil {
					return usageError{err}
				}
				if c.String("sha256") != "" {
					return usagef("--sha256 checks one file; a whole checkpoint folder is checked against the hub's digests")
				}
				ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
				defer stop()
				return pullFolder(ctx, &cl, repo, c.String("out"), c.Bool("quiet"), c.App.Writer, w)
			}
			ref, err := hub.ParseRef(c.Args().First())
			if err != nil {
				return usageError{err}
			}
			var bar *progressbar.ProgressBar
			if !c.Bool("quiet") {
				bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(w), progressbar.OptionShowBytes(true),
					progressbar.OptionSetPredictTime(true), progressbar.OptionSetDescription(ref.File),
					progressbar.OptionSetWidth(30), progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
				cl.Progress = func(p hub.Progress) {
					if p.Total > 0 && bar.GetMax64() != p.Total {
						bar.ChangeMax64(p.Total)
					}
					_ = bar.Set64(p.Done)
				}
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			path, err := cl.Download(ctx, ref, c.String("out"))
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				return err
			}
			st, err := os.Stat(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote %s (%d bytes)\n", path, st.Size())
			return nil
		},
	}
}
