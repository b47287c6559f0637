// Package deploy_test checks the deployment files offline: the manifests parse and carry
// the fields their behaviour depends on, the Slurm script is valid bash, and the shell
// that each runs picks the right sweep file and resumes from a checkpoint, run here with
// a stand-in ecotune that records its arguments.
package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/ecotune/ecotune/config"
)

// doc is one parsed YAML document.
type doc map[string]any

// get walks a path of map keys and list indexes, failing the test where it breaks.
func (d doc) get(t *testing.T, path ...any) any {
	t.Helper()
	var cur any = map[string]any(d)
	for i, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			require.Truef(t, ok, "%v: not a mapping", path[:i])
			cur, ok = m[k]
			require.Truef(t, ok, "%v: missing", path[:i+1])
		case int:
			l, ok := cur.([]any)
			require.Truef(t, ok && k < len(l), "%v: not a list of more than %d", path[:i], k)
			cur = l[k]
		}
	}
	return cur
}

func (d doc) str(t *testing.T, path ...any) string {
	t.Helper()
	s, ok := d.get(t, path...).(string)
	require.Truef(t, ok, "%v is not a string", path)
	return s
}

// strings returns a list of scalars at path as text.
func (d doc) strings(t *testing.T, path ...any) []string {
	t.Helper()
	l, ok := d.get(t, path...).([]any)
	require.Truef(t, ok, "%v is not a list", path)
	var out []string
	for _, v := range l {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// readYAML parses every document of a YAML file, keyed by kind.
func readYAML(t *testing.T, path string) map[string]doc {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(b))
	docs := map[string]doc{}
	for {
		var m map[string]any // not doc: yaml would make every nested mapping a doc too
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, path)
		d := doc(m)
		kind, _ := d["kind"].(string)
		require.NotEmpty(t, kind, "%s: a document without kind", path)
		require.NotContains(t, docs, kind, "%s: two documents of kind %s", path, kind)
		docs[kind] = d
	}
	return docs
}

// sweepFiles returns deploy/sweep/sweep-N.toml for N = 0, 1, ..., checking there are no gaps.
func sweepFiles(t *testing.T) []string {
	t.Helper()
	matches, err := filepath.Glob("sweep/sweep-*.toml")
	require.NoError(t, err)
	require.NotEmpty(t, matches)
	for i := range matches {
		require.FileExists(t, fmt.Sprintf("sweep/sweep-%d.toml", i), "the sweep files must be numbered 0..%d", len(matches)-1)
	}
	return matches
}

// TestSweepConfigs loads every sweep file with the parser `ecotune train --config` uses.
func TestSweepConfigs(t *testing.T) {
	seen := map[string]bool{}
	for i := range sweepFiles(t) {
		f, err := config.Load(fmt.Sprintf("sweep/sweep-%d.toml", i))
		require.NoError(t, err)
		// The Slurm script's own variables share ecotune's prefix; train must ignore them.
		require.NoError(t, f.ApplyEnv([]string{"ECOTUNE_WORKDIR=/shared", "ECOTUNE=/opt/bin/ecotune"}))
		// The Job and the Slurm script pass --out runs/sweep-N and look for checkpoints
		// there; a file that said otherwise would mislead whoever runs it by hand.
		out, _ := f.Get("output.dir")
		assert.Equal(t, fmt.Sprintf("runs/sweep-%d", i), out)
		var point []string
		for _, k := range []string{"lora.r", "training.learning_rate"} {
			v, ok := f.Get(k)
			require.True(t, ok, "sweep-%d sets no %s", i, k)
			point = append(point, v)
		}
		key := strings.Join(point, " ")
		assert.False(t, seen[key], "sweep-%d repeats the point %s", i, key)
		seen[key] = true
		for _, k := range []string{"model.path", "data.train"} {
			v, _ := f.Get(k)
			assert.False(t, filepath.IsAbs(v), "sweep-%d: %s %s must be relative to the shared volume's root", i, k, v)
		}
	}
}

// TestKustomization checks that everything it names exists and that the ConfigMap it
// generates is the one the Job mounts.
func TestKustomization(t *testing.T) {
	k := readYAML(t, "kustomization.yaml")["Kustomization"]
	require.NotNil(t, k)
	for _, r := range k.strings(t, "resources") {
		assert.FileExists(t, r)
	}
	gen := k.get(t, "configMapGenerator", 0).(map[string]any)
	assert.Equal(t, "ecotune-sweep", gen["name"])
	files := doc(gen).strings(t, "files")
	assert.ElementsMatch(t, sweepFiles(t), files, "the ConfigMap must carry every sweep file")
}

// TestTrainJob checks the Indexed Job and runs its shell with a stand-in ecotune.
func TestTrainJob(t *testing.T) {
	job := readYAML(t, "k8s/train-sweep.yaml")["Job"]
	require.NotNil(t, job)
	assert.Equal(t, "batch/v1", job.str(t, "apiVersion"))
	assert.Equal(t, "Indexed", job.str(t, "spec", "completionMode"))
	assert.Equal(t, len(sweepFiles(t)), job.get(t, "spec", "completions"), "one index per sweep file")
	assert.Equal(t, "Never", job.str(t, "spec", "template", "spec", "restartPolicy"))

	pod := doc(job.get(t, "spec", "template", "spec").(map[string]any))
	c := doc(pod.get(t, "containers", 0).(map[string]any))
	assert.Equal(t, []string{"/bin/sh", "-c"}, c.strings(t, "command"))
	script := c.str(t, "args", 0)
	assert.Contains(t, script, `ecotune train --config "/etc/ecotune/sweep/sweep-$JOB_COMPLETION_INDEX.toml"`)
	assert.Equal(t, "/etc/ecotune/sweep", mountPath(t, pod, c, "configMap", "ecotune-sweep"))
	assert.Equal(t, c.str(t, "workingDir"), mountPath(t, pod, c, "persistentVolumeClaim", "ecotune-data"),
		"the configs' relative paths resolve against the shared volume")
	assert.Equal(t, "ecotune-data", readYAML(t, "k8s/pvc.yaml")["PersistentVolumeClaim"].str(t, "metadata", "name"))

	// Pod 2's first try trains sweep-2 from its config; its retry resumes the run.
	env := []string{"JOB_COMPLETION_INDEX=2", "THREADS=8"}
	dir, got := runScript(t, env, "/bin/sh", "-c", script)
	assert.Equal(t, "train --config /etc/ecotune/sweep/sweep-2.toml --out runs/sweep-2 --threads 8 --quiet", got)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "runs/sweep-2/checkpoint-50"), 0o755))
	_, got = runScriptIn(t, dir, env, "/bin/sh", "-c", script)
	assert.Equal(t, "train --resume runs/sweep-2 --threads 8 --quiet", got)
}

// mountPath returns where container c mounts the pod's volume of the given source type
// and name.
func mountPath(t *testing.T, pod, c doc, source, name string) string {
	t.Helper()
	var volume string
	for _, v := range pod.get(t, "volumes").([]any) {
		v := doc(v.(map[string]any))
		if src, ok := v[source].(map[string]any); ok && (src["name"] == name || src["claimName"] == name) {
			volume = v.str(t, "name")
		}
	}
	require.NotEmpty(t, volume, "no %s volume %s", source, name)
	for _, m := range c.get(t, "volumeMounts").([]any) {
		m := doc(m.(map[string]any))
		if m.str(t, "name") == volume {
			return m.str(t, "mountPath")
		}
	}
	t.Fatalf("volume %s is not mounted", volume)
	return ""
}

// TestServeDeployment checks the replicas, their probes and the Service that reaches them.
func TestServeDeployment(t *testing.T) {
	docs := readYAML(t, "k8s/serve.yaml")
	d, svc := docs["Deployment"], docs["Service"]
	require.NotNil(t, d)
	require.NotNil(t, svc)
	pod := doc(d.get(t, "spec", "template").(map[string]any))
	labels := pod.get(t, "metadata", "labels")
	assert.Equal(t, labels, d.get(t, "spec", "selector", "matchLabels"))
	assert.Equal(t, labels, svc.get(t, "spec", "selector"), "the Service must select the replicas")

	c := doc(pod.get(t, "spec", "containers", 0).(map[string]any))
	args := c.strings(t, "command")
	require.Equal(t, []string{"ecotune", "serve"}, args[:2])
	flag := func(name string) string {
		i := slices.Index(args, name)
		require.True(t, i > 0 && i+1 < len(args), "serve has no %s", name)
		return args[i+1]
	}
	assert.Equal(t, "0.0.0.0", flag("--host"), "127.0.0.1, the default, is unreachable from outside the pod")
	port, err := strconv.Atoi(flag("--port"))
	require.NoError(t, err)
	assert.Equal(t, port, c.get(t, "ports", 0, "containerPort"))
	portName := c.str(t, "ports", 0, "name")
	assert.Equal(t, portName, svc.str(t, "spec", "ports", 0, "targetPort"))
	assert.Equal(t, "/health", c.str(t, "readinessProbe", "httpGet", "path"))
	assert.Equal(t, portName, c.str(t, "readinessProbe", "httpGet", "port"))
	assert.Equal(t, "adapters", flag("--adapters-dir"))

	// The pod must outlive the preStop pause plus the streams' grace, or SIGKILL cuts them.
	grace, err := strconv.Atoi(strings.TrimSuffix(flag("--grace"), "s"))
	require.NoError(t, err)
	pause, err := strconv.Atoi(c.strings(t, "lifecycle", "preStop", "exec", "command")[1])
	require.NoError(t, err)
	assert.Greater(t, pod.get(t, "spec", "terminationGracePeriodSeconds"), grace+pause)
}

// TestSlurmArray checks the array script's syntax and range, and runs it with a
// stand-in ecotune as Slurm would for task 3, fresh and requeued.
func TestSlurmArray(t *testing.T) {
	const script = "slurm/train-array.sbatch"
	out, err := exec.Command("bash", "-n", script).CombinedOutput()
	require.NoError(t, err, "bash -n: %s", out)
	text, err := os.ReadFile(script)
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^#SBATCH --array=0-(\d+)(%\d+)?$`).FindSubmatch(text)
	require.NotNil(t, m, "no #SBATCH --array=0-N line")
	last, _ := strconv.Atoi(string(m[1]))
	assert.Equal(t, len(sweepFiles(t)), last+1, "one array task per sweep file")

	abs, err := filepath.Abs(script)
	require.NoError(t, err)
	env := []string{"SLURM_ARRAY_TASK_ID=3", "SLURM_CPUS_PER_TASK=16"}
	dir, got := runScript(t, env, "bash", abs)
	assert.Equal(t, "train --config deploy/sweep/sweep-3.toml --out runs/sweep-3 --threads 16 --quiet", got)
	assert.FileExists(t, filepath.Join(dir, "deploy/sweep/sweep-3.toml"), "the config it names is there")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "runs/sweep-3/checkpoint-100"), 0o755))
	_, got = runScriptIn(t, dir, env, "bash", abs)
	assert.Equal(t, "train --resume runs/sweep-3 --threads 16 --quiet", got)

	// Run outside sbatch, it says so instead of training something.
	cmd := exec.Command("bash", abs)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ECOTUNE_WORKDIR="+dir, "SLURM_ARRAY_TASK_ID=")
	out, err = cmd.CombinedOutput()
	assert.Error(t, err)
	assert.Contains(t, string(out), "submit this with sbatch")
}

// runScript makes a fresh working directory (the shared volume: a copy of the sweep
// files under deploy/sweep) and runs the command there with a stand-in ecotune.
func runScript(t *testing.T, env []string, name string, args ...string) (dir, got string) {
	t.Helper()
	dir = t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "deploy/sweep"), 0o755))
	for _, f := range sweepFiles(t) {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "deploy", f), b, 0o644))
	}
	return runScriptIn(t, dir, env, name, args...)
}

// runScriptIn runs the command in dir with an ecotune on PATH that only writes its
// arguments to a file, and returns them.
func runScriptIn(t *testing.T, dir string, env []string, name string, args ...string) (string, string) {
	t.Helper()
	bin := t.TempDir()
	record := filepath.Join(bin, "args")
	stub := "#!/bin/sh\necho \"$*\" > " + record + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "ecotune"), []byte(stub), 0o755))
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append(env, "PATH="+bin+":"+os.Getenv("PATH"), "ECOTUNE_WORKDIR="+dir)...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := os.ReadFile(record)
	require.NoError(t, err, "ecotune was not run; output:\n%s", out)
	return dir, strings.TrimSpace(string(b))
}
