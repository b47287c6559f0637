package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
)

// fineTuneScript uploads the bundled environmental dataset with the official openai
// client, creates a job, polls it to its end, lists its events and checkpoints, and chats
// with the model it made.
const fineTuneScript = `
import OpenAI from 'openai';
import fs from 'node:fs';
const openai = new OpenAI({ baseURL: process.env.BASE_URL + '/v1', apiKey: 'k' });
const file = await openai.files.create({ file: fs.createReadStream(process.env.DATA), purpose: 'fine-tune' });
let job = await openai.fineTuning.jobs.create({
  model: 'stories', training_file: file.id, seed: 7, suffix: 'env',
  hyperparameters: { batch_size: 2 },
  ecotune: { steps: 6, seq_len: 128, r: 4 },
});
const deadline = Date.now() + 120000;
while (!['succeeded', 'failed', 'cancelled'].includes(job.status) && Date.now() < deadline) {
  await new Promise(r => setTimeout(r, 250));
  job = await openai.fineTuning.jobs.retrieve(job.id);
}
const events = [];
for await (const ev of openai.fineTuning.jobs.listEvents(job.id, { limit: 5 })) events.push(ev.message);
const checkpoints = [];
for await (const c of openai.fineTuning.jobs.checkpoints.list(job.id)) checkpoints.push(c.step_number);
const chat = await openai.chat.completions.create({
  model: job.fine_tuned_model, messages: [{ role: 'user', content: process.env.QUESTION }], max_tokens: 24, temperature: 0,
});
const jobs = (await openai.fineTuning.jobs.list()).data.map(j => j.id);
console.log(JSON.stringify({ file, job, events, checkpoints, chat: chat.choices[0].message.content, jobs }));
`

// TestFineTuningWithOpenAIClient runs a fine-tuning job end to end through the official
// openai client and checks that its adapter is, byte for byte, what `ecotune train` makes
// from the same prepared data, settings and seed, and that the server serves it at once.
func TestFineTuningWithOpenAIClient(t *testing.T) {
	node, dir := testenv.NodePackages(t, openaiNPM)
	f := newServeFixture(t)
	dataDir := filepath.Join(t.TempDir(), "state")
	url := startServe(t, f.bin, "-m", f.base, "--data-dir", dataDir, "--threads", "1", "--train-threads", "1")
	dataset := filepath.Join(testenv.Root(t), "data", "environment", "chats.jsonl")
	const question = "What is the greenhouse effect?"

	out := runNode(t, node, dir, fineTuneScript, "BASE_URL="+url, "DATA="+dataset, "QUESTION="+question)
	var got struct {
		File        struct{ ID, Filename, Purpose string }
		Events      []string
		Checkpoints []int
		Chat        string
		Jobs        []string
	}
	require.NoError(t, json.Unmarshal(out, &got), "%s", out)
	var raw struct {
		Job map[string]any
	}
	require.NoError(t, json.Unmarshal(out, &raw))
	require.Equal(t, "succeeded", raw.Job["status"], "%s", out)
	ftModel := raw.Job["fine_tuned_model"].(string)
	jobID := raw.Job["id"].(string)
	assert.Equal(t, "ft:stories:env:"+strings.TrimPrefix(jobID, "ftjob-"), ftModel)
	assert.Equal(t, float64(6*2*128), raw.Job["trained_tokens"], "6 steps of 2 sequences of 128 tokens")
	assert.Equal(t, "chats.jsonl", got.File.Filename)
	assert.Contains(t, got.Events[0], "successfully completed", "events come newest first")
	assert.Equal(t, []string{jobID}, got.Jobs)

	// The reference: the same commands a user types.
	ref := t.TempDir()
	prepared, run := filepath.Join(ref, "data"), filepath.Join(ref, "run")
	cli := func(args ...string) {
		t.Helper()
		out, err := exec.Command(f.bin, args...).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	cli("prepare", dataset, "--out", prepared, "--model", f.base, "--template", "model", "--val", "0", "--test", "0", "--seed", "7", "--quiet")
	cli("train", "-m", f.base, "--data", prepared, "--out", run, "--seed", "7", "--quiet", "--val-split", "0",
		"--steps", "6", "--batch", "2", "--lora.r", "4", "--seq-len", "128", "--threads", "1")
	want, err := os.ReadFile(filepath.Join(run, "adapter.gguf"))
	require.NoError(t, err)
	have, err := os.ReadFile(filepath.Join(dataDir, "runs", jobID, "adapter.gguf"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, have), "the job's adapter differs from ecotune train's (%d and %d bytes)", len(have), len(want))
	assert.Equal(t, generated(t, f, question, 24, "--chat", "--lora", filepath.Join(run, "adapter.gguf")), got.Chat)
	assert.Equal(t, []int{6}, got.Checkpoints)
}

// runNode runs a script (an ES module) with the installed packages and returns its stdout.
func runNode(t *testing.T, node, pkgDir, script string, env ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "script.mjs")
	require.NoError(t, os.WriteFile(path, []byte(script), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(pkgDir, "node_modules"), filepath.Join(dir, "node_modules")))
	cmd := exec.Command(node, path)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s", stderr.String())
	return out
}

// TestJobSurvivesKill kills the server with SIGKILL while a job trains, starts it again
// on the same state, and checks that the job finishes with the loss curve of an
// uninterrupted run, and that no file or job record was lost or duplicated.
func TestJobSurvivesKill(t *testing.T) {
	f := newServeFixture(t)
	dataDir := filepath.Join(t.TempDir(), "state")
	args := []string{"serve", "-m", f.base, "--data-dir", dataDir, "--threads", "1", "--train-threads", "1", "--host", "127.0.0.1", "--port", "0"}
	first, url := startRaw(t, f.bin, args...)
	dataset := filepath.Join(testenv.Root(t), "data", "environment", "chats.jsonl")

	file := postFile(t, url, dataset)
	const steps = 40
	body := fmt.Sprintf(`{"model":"stories","training_file":%q,"seed":3,"hyperparameters":{"batch_size":2},"ecotune":{"steps":%d,"seq_len":128,"r":4,"save_every":5}}`, file, steps)
	resp, err := http.Post(url+"/v1/fine_tuning/jobs", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	var job struct{ ID, Status string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&job))
	resp.Body.Close()
	run := filepath.Join(dataDir, "runs", job.ID)
	// Kill once a checkpoint exists and training has gone past it.
	require.Eventually(t, func() bool {
		return len(metricsSteps(t, filepath.Join(run, "metrics.jsonl"))) >= 12
	}, 2*time.Minute, 50*time.Millisecond)
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	first.Wait()

	_, url = startRaw(t, f.bin, args...)
	var final struct {
		Status      string
		ResultFiles []string `json:"result_files"`
	}
	require.Eventually(t, func() bool {
		r, err := http.Get(url + "/v1/fine_tuning/jobs/" + job.ID)
		if err != nil {
			return false
		}
		defer r.Body.Close()
		json.NewDecoder(r.Body).Decode(&final)
		return final.Status == "succeeded" || final.Status == "failed"
	}, 3*time.Minute, 200*time.Millisecond)
	require.Equal(t, "succeeded", final.Status)

	// The uninterrupted run.
	ref := t.TempDir()
	out, err := exec.Command(f.bin, "train", "-m", f.base, "--data", filepath.Join(dataDir, "jobs", job.ID, "data"), "--out", ref,
		"--seed", "3", "--quiet", "--val-split", "0", "--steps", fmt.Sprint(steps), "--batch", "2", "--lora.r", "4",
		"--seq-len", "128", "--save-every", "5", "--threads", "1").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, metricsSteps(t, filepath.Join(ref, "metrics.jsonl")), metricsSteps(t, filepath.Join(run, "metrics.jsonl")),
		"the resumed job's losses equal an uninterrupted run's, step for step")

	// The events show the resumption, and each step's metrics once.
	r, err := http.Get(url + "/v1/fine_tuning/jobs/" + job.ID + "/events?limit=1000")
	require.NoError(t, err)
	var evs struct {
		Data []struct{ Message, Type string }
	}
	require.NoError(t, json.NewDecoder(r.Body).Decode(&evs))
	r.Body.Close()
	resumed, metrics := 0, 0
	for _, ev := range evs.Data {
		if strings.HasPrefix(ev.Message, "Resuming from the checkpoint at step") {
			resumed++
		}
		if ev.Type == "metrics" {
			metrics++
		}
	}
	assert.Equal(t, 1, resumed)
	assert.Equal(t, steps, metrics)
	for path, want := range map[string]int{"/v1/files": 2, "/v1/fine_tuning/jobs": 1} {
		r, err := http.Get(url + path)
		require.NoError(t, err)
		var list struct{ Data []any }
		require.NoError(t, json.NewDecoder(r.Body).Decode(&list))
		r.Body.Close()
		assert.Len(t, list.Data, want, "%s: the upload and the job's results; one job", path)
	}
}

// startRaw starts `ecotune ARGS` (a serve command) and returns the process and its URL;
// the test's cleanup kills it if it still runs.
func startRaw(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "ecotune serve: listening on "); ok {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, strings.Fields(rest)[0]
		}
	}
	t.Fatalf("ecotune serve did not start")
	return nil, ""
}

// postFile uploads a fine-tuning file and returns its id.
func postFile(t *testing.T, url, path string) string {
	t.Helper()
	out, err := exec.Command("curl", "-sf", url+"/v1/files", "-F", "purpose=fine-tune", "-F", "file=@"+path).Output()
	require.NoError(t, err)
	var f struct{ ID string }
	require.NoError(t, json.Unmarshal(out, &f), "%s", out)
	return f.ID
}

// metricsSteps reads the training losses of a run's metrics.jsonl, by step.
func metricsSteps(t *testing.T, path string) map[int]float64 {
	t.Helper()
	out := map[int]float64{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		var r struct {
			Kind string
			Step int
			Loss float64
		}
		if json.Unmarshal([]byte(line), &r) == nil && r.Kind == "train" {
			out[r.Step] = r.Loss
		}
	}
	return out
}
