package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/trainer"
)

// The PyTorch peer (`ecotune bench --torch`): scripts/bench_torch_lora.py trains LoRA
// adapters on a model of the same shape as ecotune's run, in the style of Hugging Face
// transformers' llama and PEFT, with the same rank, alpha, targets, threads, sequence
// length and number of timed steps. It is what a user would run instead of ecotune.

// torchInstall is what a user installs for the peer on Debian.
const torchInstall = "apt-get install python3-torch libopenblas0-pthread"

// debianPython is the interpreter Debian's python3-torch belongs to: --python's default.
const debianPython = "/usr/bin/python3"

// torchShape is the model the peer builds: the hyper-parameters of the GGUF file
// ecotune trains.
type torchShape struct {
	Arch                                             string
	Embd, Layers, Heads, HeadsKV, HeadDim, FF, Vocab int
	RopeTheta, NormEps                               float64
	Tied                                             bool // no output.weight: lm_head is the embeddings
}

// readTorchShape reads the peer's shape from a GGUF model's metadata and tensor
// table. It refuses what the peer does not build: architectures other than llama and
// qwen2 (llama with q, k, v biases), and rotary embeddings over part of a head.
func readTorchShape(path string) (torchShape, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return torchShape{}, err
	}
	defer f.Close()
	s := torchShape{}
	if s.Arch, err = f.Meta.String("general.architecture"); err != nil {
		return s, err
	}
	if s.Arch != "llama" && s.Arch != "qwen2" {
		return s, fmt.Errorf("the PyTorch peer builds llama and qwen2 models, not %s", s.Arch)
	}
	key := func(k string) string { return s.Arch + "." + k }
	geti := func(k string, dst *int, def int) error {
		if !f.Meta.Has(key(k)) && def > 0 {
			*dst = def
			return nil
		}
		v, err := f.Meta.Int(key(k))
		if err != nil {
			return err
		}
		if v < 1 || v > 1<<24 {
			return fmt.Errorf("%s = %d is out of range", key(k), v)
		}
		*dst = int(v)
		return nil
	}
	getf := func(k string, dst *float64, def float64) error {
		if !f.Meta.Has(key(k)) {
			*dst = def
			return nil
		}
		v, err := f.Meta.Float(key(k))
		*dst = v
		return err
	}
	for _, g := range []struct {
		k   string
		dst *int
		def int
	}{{"embedding_length", &s.Embd, 0}, {"block_count", &s.Layers, 0}, {"attention.head_count", &s.Heads, 0},
		{"feed_forward_length", &s.FF, 0}} {
		if err := geti(g.k, g.dst, g.def); err != nil {
			return s, err
		}
	}
	if err := geti("attention.head_count_kv", &s.HeadsKV, s.Heads); err != nil {
		return s, err
	}
	if err := geti("attention.key_length", &s.HeadDim, s.Embd/s.Heads); err != nil {
		return s, err
	}
	var ropeDims int
	if err := geti("rope.dimension_count", &ropeDims, s.HeadDim); err != nil {
		return s, err
	}
	if ropeDims != s.HeadDim {
		return s, fmt.Errorf("the PyTorch peer rotates whole heads (as HF's llama does); this model rotates %d of %d dimensions", ropeDims, s.HeadDim)
	}
	if err := getf("rope.freq_base", &s.RopeTheta, 10000); err != nil {
		return s, err
	}
	if err := getf("attention.layer_norm_rms_epsilon", &s.NormEps, 1e-5); err != nil {
		return s, err
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || len(emb.Dims) != 2 {
		return s, fmt.Errorf("%s has no 2-D token_embd.weight", path)
	}
	s.Vocab = int(emb.Dims[1])
	_, hasOutput := f.Tensor("output.weight")
	s.Tied = !hasOutput
	return s, nil
}

// torchRun is one run of the peer: the shape, ecotune's LoRA settings (targets
// resolved to GGUF names) and the measurement's size.
type torchRun struct {
	Shape                  torchShape
	Rank                   int
	Alpha                  float32
	Targets                []string
	LR                     float64
	SeqLen, Steps, Threads int
}

// args are the script's command-line arguments for r (after the script's path).
func (r torchRun) args() []string {
	s := r.Shape
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	a := []string{"--arch", s.Arch, "--embd", strconv.Itoa(s.Embd), "--layers", strconv.Itoa(s.Layers),
		"--heads", strconv.Itoa(s.Heads), "--heads-kv", strconv.Itoa(s.HeadsKV), "--head-dim", strconv.Itoa(s.HeadDim),
		"--ff", strconv.Itoa(s.FF), "--vocab", strconv.Itoa(s.Vocab), "--rope-theta", f(s.RopeTheta), "--norm-eps", f(s.NormEps)}
	if s.Tied {
		a = append(a, "--tied")
	}
	return append(a, "--rank", strconv.Itoa(r.Rank), "--alpha", f(float64(r.Alpha)), "--targets", strings.Join(r.Targets, ","),
		"--lr", f(r.LR), "--seq-len", strconv.Itoa(r.SeqLen), "--steps", strconv.Itoa(r.Steps), "--warmup", "1",
		"--threads", strconv.Itoa(r.Threads))
}

// torchResult is the script's JSON line.
type torchResult struct {
	TokensPerSec float64 `json:"tokens_per_sec"`
	PeakRSS      int64   `json:"peak_rss_bytes"`
	Params       int64   `json:"params"`
	Threads      int     `json:"threads"`
	Version      string  `json:"torch"`
	BLAS         string  `json:"blas"`
	BLASThreads  string  `json:"openblas_threads"` // OPENBLAS_NUM_THREADS
	Error        string  `json:"error"`
}

// torchLoRA runs the peer on model's shape. failure is one line saying why it could
// not run (no python3, no torch, a shape it does not build, the script failing): the
// peer is optional, so that is not an error; err is only the context's.
func torchLoRA(ctx context.Context, python, script, model string, r torchRun) (res torchResult, failure string, err error) {
	if r.Shape, err = readTorchShape(model); err != nil {
		return res, err.Error(), nil
	}
	if _, err := os.Stat(script); err != nil {
		return res, fmt.Sprintf("%s is missing (run from the repository root or give --torch-script)", script), nil
	}
	if _, err := exec.LookPath(python); err != nil {
		return res, fmt.Sprintf("no Python interpreter %s (%s)", python, torchInstall), nil
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, python, append([]string{script}, r.args()...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return res, "", ctx.Err()
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	jsonErr := json.Unmarshal([]byte(lines[len(lines)-1]), &res)
	switch {
	case jsonErr == nil && res.Error != "":
		return res, res.Error, nil
	case runErr != nil:
		var exit *exec.ExitError
		if errors.As(runErr, &exit) {
			return res, fmt.Sprintf("%s %s: %v: %s", python, script, runErr, lastLines(strings.TrimSpace(stderr.String()), 1)), nil
		}
		return res, fmt.Sprintf("%s: %v", python, runErr), nil
	case jsonErr != nil || res.TokensPerSec <= 0:
		return res, fmt.Sprintf("%s printed no result: %s", script, lastLines(stdout.String()+stderr.String(), 1)), nil
	}
	return res, "", nil
}

// loraTargets are the modules ecotune's LoRA adapts in m, by GGUF name: the
// architecture's names for asked, less those the file does not have (with "all",
// qwen2's list holds both a fused attn_qkv and separate attn_q, attn_k, attn_v).
func loraTargets(m *trainer.Model, asked []string) ([]string, error) {
	all, err := trainer.ResolveTargets(m.Arch, asked)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range all {
		if m.Weight("blk.0."+t+".weight") != nil {
			out = append(out, t)
		}
	}
	return out, nil
}

// referenceBLAS says whether the BLAS a torch process mapped is Debian's reference
// implementation (libblas3), which makes torch's products many times slower.
func referenceBLAS(path string) bool {
	return path != "" && !strings.Contains(path, "openblas") && !strings.Contains(path, "mkl") && !strings.Contains(path, "blis")
}
