package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/trainer"
)

// crashRunArgs is a short run on the 260K model that checkpoints after every step,
// with dropout so that the random state must survive each resume too.
func crashRunArgs(out string, steps int) []string {
	return []string{"train", "-m", storiesModel, "--data", filepath.Join("..", "..", "trainer", "testdata", "stories.txt"),
		"-o", out, "--steps", strconv.Itoa(steps), "--schedule-steps", "40", "--seq-len", "16", "--batch", "1", "--threads", "1",
		"--quiet", "--eval-every", "-1", "--lora.r", "2", "--lora.dropout", "0.1", "--save-every", "1",
		"--keep-checkpoints", "2", "--val-split", "0"}
}

// trainCurve is a run's train records, without the timings that differ between runs.
func trainCurve(t *testing.T, dir string) []trainer.Record {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	require.NoError(t, err)
	var out []trainer.Record
	for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var r trainer.Record
		require.NoError(t, json.Unmarshal(line, &r), "%s", line)
		if r.Kind == "train" {
			out = append(out, trainer.Record{Kind: r.Kind, Step: r.Step, Loss: r.Loss, LR: r.LR, GradNorm: r.GradNorm})
		}
	}
	return out
}

// startCLI starts this test binary as ecotune with args in dir.
func startCLI(t *testing.T, args []string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), subprocessEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	return cmd, &stderr
}

// TestTrainSurvivesSIGKILL kills `ecotune train` with SIGKILL at 100 random moments and
// resumes it each time: every resume must succeed, and every run, however often
// killed, must end with the loss curve and the adapter of an uninterrupted run (the
// trainer resumes exactly). Checkpoints are written after every step and fsync'ed, so
// most of a run's time is spent inside checkpoint writes and many kills land there;
// the test counts them by the temporary directories they leave. It takes 40-90 s on
// two busy cores (about 20 runs of 40 steps, each killed a few times).
func TestTrainSurvivesSIGKILL(t *testing.T) {
	requireModel(t)
	if testing.Short() {
		t.Skip("kills and resumes training 100 times")
	}
	const steps, kills = 40, 100
	start := time.Now()
	ref := filepath.Join(t.TempDir(), "ref")
	cmd, stderr := startCLI(t, crashRunArgs(ref, steps))
	require.NoError(t, cmd.Wait(), stderr.String())
	refDuration := time.Since(start)
	want := trainCurve(t, ref)
	require.Len(t, want, steps)
	wantAdapter, err := os.ReadFile(filepath.Join(ref, "adapter.gguf"))
	require.NoError(t, err)

	// A kill comes at a uniform moment within a third of an uninterrupted run, so each
	// attempt gets a few steps further and a run sees several kills before it ends.
	rng := rand.New(rand.NewPCG(20, 100))
	killed, inWrite, rounds := 0, 0, 0
	// Where fsync is cheap (a tmpfs) writes are short and fewer kills land in them: go
	// on, up to four times as many kills, until one has.
	for killed < kills || (inWrite == 0 && killed < 4*kills) {
		rounds++
		dir := filepath.Join(t.TempDir(), "run")
		args := crashRunArgs(dir, steps)
		for attempt := 0; ; attempt++ {
			require.Less(t, attempt, 500, "round %d makes no progress", rounds)
			cmd, stderr := startCLI(t, args)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Duration(rng.Int64N(int64(refDuration / 3)))):
				_ = cmd.Process.Signal(syscall.SIGKILL)
				err = <-done
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
				killed++
				if temps, _ := filepath.Glob(filepath.Join(dir, ".checkpoint-*")); len(temps) > 0 {
					inWrite++
				}
				// The first attempt may die before writing train_config.json; then
				// the run is started afresh, as a user would.
				if _, serr := os.Stat(filepath.Join(dir, "train_config.json")); serr == nil {
					args = []string{"train", "--resume", dir, "--quiet", "--threads", "1"}
				}
				continue
			}
			require.NoError(t, err, "round %d attempt %d (%v): %s", rounds, attempt, args[:2], stderr.String())
			break
		}
		assert.Equal(t, want, trainCurve(t, dir), "round %d: the loss curve of a killed and resumed run", rounds)
		got, err := os.ReadFile(filepath.Join(dir, "adapter.gguf"))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(wantAdapter, got), "round %d: the adapter differs from the uninterrupted run's", rounds)
		if t.Failed() {
			return
		}
	}
	t.Logf("%d kills in %d runs, %d of them inside a checkpoint write, in %v", killed, rounds, inWrite, time.Since(start).Round(time.Second))
	assert.Positive(t, inWrite, "no kill landed inside a checkpoint write")
}

// TestTrainCheckpointOnFullDisk fills a small tmpfs while a resumed run is about to
// write a checkpoint: the run must fail with one clear line, leave no partial
// checkpoint, and keep the previous one loadable, and the run must then resume to the
// same adapter as an uninterrupted one once space is freed.
func TestTrainCheckpointOnFullDisk(t *testing.T) {
	requireModel(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })

	ref := filepath.Join(t.TempDir(), "ref")
	code, _, stderr := runCLI(t, crashRunArgs(ref, 4)...)
	require.Equal(t, 0, code, stderr)

	dir := filepath.Join(mnt, "run")
	code, _, stderr = runCLI(t, crashRunArgs(dir, 2)...)
	require.Equal(t, 0, code, stderr)
	// Leave less room than one checkpoint (about 90 KB): the next one cannot fit.
	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler, 16<<10)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, exe, "train", "--resume", dir, "--steps", "4", "--quiet", "--threads", "1")
	cmd.Env = append(os.Environ(), subprocessEnv+"=1")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err = cmd.Run()
	require.Error(t, err, "a full disk went unnoticed")
	assert.Equal(t, exitError, cmd.ProcessState.ExitCode(), errb.String())
	assert.NotRegexp(t, fatalMarks, errb.String())
	var errLines []string
	for _, l := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
		if strings.HasPrefix(l, "ecotune: ") && !strings.Contains(l, " layers), ") {
			errLines = append(errLines, l)
		}
	}
	require.Len(t, errLines, 1, errb.String())
	t.Logf("full disk: %s", errLines[0])
	assert.Contains(t, errLines[0], "no space left on device")
	assert.Contains(t, errLines[0], "checkpoint "+filepath.Join(dir, "checkpoint-3")+":")

	temps, _ := filepath.Glob(filepath.Join(dir, ".checkpoint-*"))
	assert.Empty(t, temps, "a failed checkpoint write leaves nothing behind")
	last, err := trainer.LatestCheckpoint(dir)
	require.NoError(t, err)
	assert.Equal(t, "checkpoint-2", filepath.Base(last))
	_, err = trainer.ReadCheckpoint(last)
	require.NoError(t, err, "the previous checkpoint is still loadable")

	require.NoError(t, os.Remove(filler))
	code, _, stderr = runCLI(t, "train", "--resume", dir, "--steps", "4", "--quiet", "--threads", "1")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, trainCurve(t, ref), trainCurve(t, dir))
	want, err := os.ReadFile(filepath.Join(ref, "adapter.gguf"))
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(dir, "adapter.gguf"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, got), "the run resumed after the full disk ends as an uninterrupted one")
}

// fillDisk writes a file at path until its file system has at most left bytes free.
func fillDisk(t *testing.T, path string, left int64) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	var st syscall.Statfs_t
	require.NoError(t, syscall.Statfs(filepath.Dir(path), &st))
	free := int64(st.Bavail) * st.Bsize
	if free > left {
		_, err = f.Write(make([]byte, free-left))
		require.NoError(t, err)
	}
}
