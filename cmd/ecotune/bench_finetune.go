package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// finetuneProgress matches llama-finetune's training progress line: sequences done and
// elapsed time.
var finetuneProgress = regexp.MustCompile(`train: \[[^\]]*\] data=(\d+)/(\d+) .*? t=(\d+):(\d\d):(\d\d)`)

// finetuneWords make the text llama-finetune trains on: ordinary words, so the
// tokenizer gives a few tokens per word as on real text.
var finetuneWords = strings.Fields(`the carbon cycle moves carbon between the atmosphere oceans soils and living
things forests store carbon in wood and roots rivers carry nutrients to the sea air quality depends on
particles ozone and nitrogen dioxide energy from wind and sunlight replaces coal and gas waste can be
reused repaired or recycled water evaporates condenses and falls as rain species adapt to their habitats`)

// llamaFinetune runs llama.cpp's llama-finetune (full fine-tuning) for one epoch over
// about seqs sequences of seqLen tokens of text and returns its training tokens/s:
// sequences done over elapsed time from its own progress line, or over the whole
// process's time when that line's clock (whole seconds) reads under 10 s. failure is its last
// error line when it exits with an error (it aborts on models it cannot build a graph
// for); err is for everything else.
func llamaFinetune(ctx context.Context, tool, model string, seqLen, seqs, threads int) (tps float64, failure string, err error) {
	if _, err := os.Stat(tool); err != nil {
		return 0, "", fmt.Errorf("llama.cpp's llama-finetune is not built (%w): run `make native`", err)
	}
	dir, err := os.MkdirTemp("", "ecotune-finetune-")
	if err != nil {
		return 0, "", err
	}
	defer os.RemoveAll(dir)
	r := rand.New(rand.NewPCG(3, 4))
	var text strings.Builder
	// About four characters a token; llama-finetune keeps 10% of the text for validation.
	for text.Len() < 5*seqs*seqLen {
		text.WriteString(finetuneWords[r.IntN(len(finetuneWords))])
		text.WriteByte(' ')
	}
	file := filepath.Join(dir, "text.txt")
	if err := os.WriteFile(file, []byte(text.String()), 0o644); err != nil {
		return 0, "", err
	}
	n := strconv.Itoa(seqLen)
	cmd := exec.CommandContext(ctx, tool, "-m", model, "-f", file, "-c", n, "-b", n, "-ub", n,
		"-t", strconv.Itoa(threads), "--epochs", "1", "-ngl", "0", "-o", filepath.Join(dir, "out.gguf"))
	start := time.Now()
	out, runErr := cmd.CombinedOutput()
	wall := time.Since(start).Seconds()
	if ctx.Err() != nil {
		return 0, "", ctx.Err()
	}
	if runErr != nil {
		var exit *exec.ExitError
		if !errors.As(runErr, &exit) {
			return 0, "", fmt.Errorf("llama-finetune: %w", runErr)
		}
		return 0, lastErrorLine(out, runErr), nil
	}
	m := finetuneProgress.FindAllSubmatch(out, -1)
	if len(m) == 0 {
		return 0, "", fmt.Errorf("llama-finetune printed no training progress")
	}
	last := m[len(m)-1]
	done, _ := strconv.Atoi(string(last[1]))
	h, _ := strconv.Atoi(string(last[3]))
	mi, _ := strconv.Atoi(string(last[4]))
	s, _ := strconv.Atoi(string(last[5]))
	secs := float64(3600*h + 60*mi + s)
	if secs < 10 {
		secs = wall
	}
	return float64(done*seqLen) / secs, "", nil
}

// lastErrorLine is the last line of out that names an error or failed assertion, or
// the exit status.
func lastErrorLine(out []byte, err error) string {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		l := string(bytes.TrimSpace(lines[i]))
		if strings.Contains(l, "GGML_ASSERT") || strings.Contains(strings.ToLower(l), "error") || strings.Contains(l, " E ") {
			return l
		}
	}
	return err.Error()
}
