package trainer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/atomicfile"
)

// A checkpoint is a directory RunDir/checkpoint-<step>/ holding index.json (a
// Checkpoint), adapter.gguf (the LoRA, loadable by llama.cpp as it is) and optimizer.bin
// (AdamW's moments, raw little-endian F32 at the offsets the index gives). It is written
// into a temporary sibling directory, every file synced, and renamed into place, so a
// directory named checkpoint-<step> is always complete and a crash while writing leaves
// only a temporary directory that the next Train removes.
const (
	checkpointFormat    = 1
	checkpointIndex     = "index.json"
	checkpointAdapter   = "adapter.gguf"
	checkpointModel     = "model.gguf" // full fine-tuning: the whole model
	checkpointOptimizer = "optimizer.bin"
	checkpointPrefix    = "checkpoint-"
	checkpointTemp      = ".checkpoint-" // temporary and doomed directories start with this
	bestDir             = "best"
)

// Tensor roles in a checkpoint.
const (
	roleAdapter = "adapter"
	roleWeights = "weights" // full fine-tuning
	roleAdamM   = "adam_m"
	roleAdamV   = "adam_v"
)

// ErrNoCheckpoint is wrapped by LatestCheckpoint's error when a run directory holds no
// complete checkpoint.
var ErrNoCheckpoint = errors.New("no complete checkpoint")

// checkpointHook, set only by tests, runs after each stage of a checkpoint write
// ("adapter", "optimizer", "index"), so a test can kill the process mid-write.
var checkpointHook func(stage string, step int)

// Checkpoint is a checkpoint's index.json: the training loop's state as plain values
// and where each tensor's bytes are. ReadCheckpoint returns it validated.
type Checkpoint struct {
	Format       int                `json:"format"`
	Step         int                `json:"step"`          // optimizer steps done: also the schedule's position
	LR           float64            `json:"lr"`            // learning rate of Step
	TrainLoss    float64            `json:"train_loss"`    // loss of Step
	Examples     int                `json:"examples"`      // size of the training set
	Epoch        int                `json:"epoch"`         // shuffles of the training set drawn so far
	Order        []int              `json:"order"`         // the current epoch's shuffled example indices
	Next         int                `json:"next"`          // position in Order of the next example
	ShuffleRNG   []byte             `json:"shuffle_rng"`   // the shuffling PCG, as its MarshalBinary
	DropoutRNG   []byte             `json:"dropout_rng"`   // the dropout-mask PCG
	AdamStep     int                `json:"adam_step"`     // AdamW updates applied (drives bias correction)
	MicroBatch   int                `json:"micro_batch"`   // sequences per micro-batch (after any out-of-memory halving)
	Tokens       int                `json:"tokens"`        // tokens processed
	ElapsedSec   float64            `json:"elapsed_s"`     // training time so far
	Evals        []EvalPoint        `json:"evals"`         // validation losses so far
	Best         *EvalPoint         `json:"best"`          // the lowest of Evals, nil if none
	SinceBest    int                `json:"since_best"`    // evaluations since Best
	EarlyStopped bool               `json:"early_stopped"` // patience ran out: the run is over
	Model        CheckpointModel    `json:"model"`
	Config       Config             `json:"config"` // resolved
	Tensors      []CheckpointTensor `json:"tensors"`

	dir  string
	data map[string][]byte // role/name → bytes, filled by ReadCheckpoint
}

// CheckpointModel identifies the base model a checkpoint was trained on.
type CheckpointModel struct {
	Path   string `json:"path"`
	Arch   string `json:"arch"`
	Layers int    `json:"layers"`
	Embd   int    `json:"embd"`
	Vocab  int    `json:"vocab"`
}

// CheckpointTensor locates one tensor of a checkpoint.
type CheckpointTensor struct {
	Name   string `json:"name"`   // the LoRA tensor's name, <base>.weight.lora_a/b
	Role   string `json:"role"`   // "adapter", "adam_m" or "adam_v"
	File   string `json:"file"`   // adapter.gguf (found by name) or optimizer.bin (at Offset)
	Type   string `json:"type"`   // "f32"
	Shape  []int  `json:"shape"`  // ggml order, ne[0] first
	Offset int64  `json:"offset"` // byte offset in optimizer.bin
	Bytes  int64  `json:"bytes"`
	CRC32  uint32 `json:"crc32"` // IEEE, of the bytes
}

// Dir is the checkpoint's directory.
func (c *Checkpoint) Dir() string { return c.dir }

func checkpointName(step int) string { return checkpointPrefix + strconv.Itoa(step) }

// LatestCheckpoint returns the directory of the newest complete checkpoint in runDir,
// or an error wrapping ErrNoCheckpoint. Temporary directories of interrupted writes
// are ignored.
func LatestCheckpoint(runDir string) (string, error) {
	steps, err := listCheckpoints(runDir)
	if err != nil {
		return "", err
	}
	if len(steps) == 0 {
		return "", fmt.Errorf("trainer: %s: %w (run without resuming first, or point at the run's output directory)", runDir, ErrNoCheckpoint)
	}
	return filepath.Join(runDir, checkpointName(steps[len(steps)-1])), nil
}

// listCheckpoints returns the steps of runDir's complete checkpoints, ascending.
func listCheckpoints(runDir string) ([]int, error) {
	entries, err := os.ReadDir(runDir)
	if err != nil {
		return nil, fmt.Errorf("trainer: checkpoints: %w", err)
	}
	var steps []int
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), checkpointPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		step, err := strconv.Atoi(rest)
		if err != nil || step < 1 || checkpointName(step) != e.Name() {
			continue
		}
		// The rename makes every such directory complete; the index check also skips
		// directories someone made by hand.
		if _, err := os.Stat(filepath.Join(runDir, e.Name(), checkpointIndex)); err != nil {
			continue
		}
		steps = append(steps, step)
	}
	sort.Ints(steps)
	return steps, nil
}

// removeStaleTemps deletes what killed writers left in runDir: temporary checkpoint
// directories, checkpoints half-way through deletion and temporary best adapters.
func removeStaleTemps(runDir string) error {
	for _, pattern := range []string{
		filepath.Join(runDir, checkpointTemp+"*"),
		filepath.Join(runDir, bestDir, ".*.tmp-*"),
	} {
		stale, err := filepath.Glob(pattern)
		if err != nil {
			return fmt.Errorf("trainer: %w", err)
		}
		for _, p := range stale {
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("trainer: removing an interrupted checkpoint write: %w", err)
			}
		}
	}
	return nil
}

// save writes the checkpoint of step (whose loss was trainLoss) and drops the oldest
// beyond KeepCheckpoints. It returns the checkpoint's directory.
func (l *loop) save(step int, trainLoss float64) (dir string, err error) {
	runDir := l.cfg.RunDir
	// The error names final, not dir: every failing return sets dir to "".
	final := filepath.Join(runDir, checkpointName(step))
	dir = final
	tmp, err := os.MkdirTemp(runDir, checkpointTemp+strconv.Itoa(step)+".tmp-")
	if err != nil {
		return "", fmt.Errorf("trainer: checkpoint %s: %w", final, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
			err = fmt.Errorf("trainer: checkpoint %s: %w", final, err)
		}
	}()
	ck, err := l.snapshot(step, trainLoss)
	if err != nil {
		return "", err
	}
	// The adapter (or model): llama.cpp's format, so a checkpoint is also usable as it is.
	if err := l.tr.write(filepath.Join(tmp, l.tr.file())); err != nil {
		return "", err
	}
	role := paramRole(l.tr.file())
	for _, p := range l.tr.params() {
		b, err := p.Bytes()
		if err != nil {
			return "", err
		}
		ck.Tensors = append(ck.Tensors, tensorEntry(p.Name(), role, l.tr.file(), p.Shape(), 0, b))
	}
	checkpointStage("adapter", step)
	// The optimizer's moments, one after another in parameter order.
	f, err := os.Create(filepath.Join(tmp, checkpointOptimizer))
	if err != nil {
		return "", err
	}
	var off int64
	for _, set := range []struct {
		role string
		ts   []*ggml.Tensor
	}{{roleAdamM, l.opt.mom}, {roleAdamV, l.opt.vel}} {
		for i, t := range set.ts {
			b, err := t.Bytes()
			if err == nil {
				_, err = f.Write(b)
			}
			if err != nil {
				f.Close()
				return "", err
			}
			ck.Tensors = append(ck.Tensors, tensorEntry(l.opt.params[i].Name(), set.role, checkpointOptimizer, t.Shape(), off, b))
			off += int64(len(b))
		}
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return "", err
	}
	checkpointStage("optimizer", step)
	index, err := json.MarshalIndent(ck, "", " ")
	if err != nil {
		return "", err
	}
	if err := writeSynced(filepath.Join(tmp, checkpointIndex), append(index, '\n')); err != nil {
		return "", err
	}
	checkpointStage("index", step)
	syncDir(tmp)
	// A checkpoint of the same step (a run resumed from an earlier one re-reaching it)
	// is replaced: moved aside first, because rename cannot replace a directory.
	if _, err := os.Stat(dir); err == nil {
		old := filepath.Join(runDir, fmt.Sprintf("%s%d.old-%d", checkpointTemp, step, time.Now().UnixNano()))
		if err := os.Rename(dir, old); err != nil {
			return "", err
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	syncDir(runDir)
	return dir, l.rotate()
}

// rotate deletes all but the newest KeepCheckpoints checkpoints. Each is renamed to a
// temporary name first, so that a crash mid-deletion never leaves a half-deleted
// directory that looks like a checkpoint.
func (l *loop) rotate() error {
	if l.cfg.KeepCheckpoints < 0 {
		return nil
	}
	steps, err := listCheckpoints(l.cfg.RunDir)
	if err != nil {
		return err
	}
	for len(steps) > l.cfg.KeepCheckpoints {
		dir := filepath.Join(l.cfg.RunDir, checkpointName(steps[0]))
		doomed := filepath.Join(l.cfg.RunDir, fmt.Sprintf("%s%d.del-%d", checkpointTemp, steps[0], time.Now().UnixNano()))
		if err := os.Rename(dir, doomed); err != nil {
			return fmt.Errorf("trainer: removing old checkpoint: %w", err)
		}
		syncDir(l.cfg.RunDir)
		if err := os.RemoveAll(doomed); err != nil {
			return fmt.Errorf("trainer: removing old checkpoint: %w", err)
		}
		steps = steps[1:]
	}
	return nil
}

func checkpointStage(stage string, step int) {
	if checkpointHook != nil {
		checkpointHook(stage, step)
	}
}

func tensorEntry(name, role, file string, shape []int, off int64, b []byte) CheckpointTensor {
	return CheckpointTensor{Name: name, Role: role, File: file, Type: "f32", Shape: slices.Clone(shape),
		Offset: off, Bytes: int64(len(b)), CRC32: crc32.ChecksumIEEE(b)}
}

// snapshot captures the loop's state after step (everything but the tensors).
func (l *loop) snapshot(step int, trainLoss float64) (*Checkpoint, error) {
	shuffle, err := l.shuffle.MarshalBinary()
	if err != nil {
		return nil, err
	}
	drop, err := l.drop.MarshalBinary()
	if err != nil {
		return nil, err
	}
	ck := &Checkpoint{
		Format: checkpointFormat, Step: step, LR: l.cfg.Schedule.At(step), TrainLoss: trainLoss,
		Examples: l.train.Len(), Epoch: l.epoch, Order: l.order, Next: l.next,
		ShuffleRNG: shuffle, DropoutRNG: drop, AdamStep: l.opt.t, MicroBatch: l.micro,
		Tokens: l.tokens, ElapsedSec: l.elapsed().Seconds(), Evals: l.evals, SinceBest: l.sinceBest,
		EarlyStopped: l.earlyStopped, Config: l.cfg,
		Model: CheckpointModel{Path: l.m.Path, Arch: l.m.HP.Arch, Layers: l.m.HP.Layers, Embd: l.m.HP.Embd, Vocab: l.m.HP.Vocab},
	}
	if ck.Order == nil {
		ck.Order = []int{}
	}
	if l.best.Step >= 0 {
		b := l.best
		ck.Best = &b
	}
	return ck, nil
}

// ReadCheckpoint reads and validates the checkpoint in dir: its index, and every
// tensor's size and checksum in adapter.gguf and optimizer.bin. Errors name the file
// and the field at fault.
func ReadCheckpoint(dir string) (*Checkpoint, error) {
	indexPath := filepath.Join(dir, checkpointIndex)
	raw, err := os.ReadFile(indexPath)
	if err != nil {
		return nil, fmt.Errorf("trainer: checkpoint: %w", err)
	}
	ck := &Checkpoint{dir: dir}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ck); err != nil {
		return nil, fmt.Errorf("trainer: checkpoint %s: %w", indexPath, err)
	}
	if err := ck.validate(); err != nil {
		return nil, fmt.Errorf("trainer: checkpoint %s: %w", indexPath, err)
	}
	if err := ck.readTensors(); err != nil {
		return nil, fmt.Errorf("trainer: checkpoint %s: %w", dir, err)
	}
	return ck, nil
}

// validate checks the index's fields against each other.
func (c *Checkpoint) validate() error {
	if c.Format != checkpointFormat {
		return fmt.Errorf("field format is %d, this version reads %d", c.Format, checkpointFormat)
	}
	if c.Step < 1 {
		return fmt.Errorf("field step is %d, must be ≥ 1", c.Step)
	}
	if c.Examples < 1 {
		return fmt.Errorf("field examples is %d, must be ≥ 1", c.Examples)
	}
	if len(c.Order) != c.Examples {
		return fmt.Errorf("field order has %d entries for %d examples", len(c.Order), c.Examples)
	}
	seen := make([]bool, c.Examples)
	for i, x := range c.Order {
		if x < 0 || x >= c.Examples || seen[x] {
			return fmt.Errorf("field order is not a permutation of the %d examples (entry %d is %d)", c.Examples, i, x)
		}
		seen[x] = true
	}
	if c.Next < 0 || c.Next > len(c.Order) {
		return fmt.Errorf("field next is %d, outside [0, %d]", c.Next, len(c.Order))
	}
	if c.Epoch < 1 {
		return fmt.Errorf("field epoch is %d, must be ≥ 1 after a step", c.Epoch)
	}
	for field, b := range map[string][]byte{"shuffle_rng": c.ShuffleRNG, "dropout_rng": c.DropoutRNG} {
		if err := new(rand.PCG).UnmarshalBinary(b); err != nil {
			return fmt.Errorf("field %s: %w", field, err)
		}
	}
	if c.AdamStep < 0 {
		return fmt.Errorf("field adam_step is %d, must be ≥ 0", c.AdamStep)
	}
	if c.MicroBatch < 1 || c.MicroBatch > c.Config.BatchSize {
		return fmt.Errorf("field micro_batch is %d, outside [1, config.BatchSize %d]", c.MicroBatch, c.Config.BatchSize)
	}
	if c.Tokens < 0 || !(c.ElapsedSec >= 0) || math.IsInf(c.ElapsedSec, 0) {
		return fmt.Errorf("fields tokens %d and elapsed_s %g must be ≥ 0", c.Tokens, c.ElapsedSec)
	}
	for i, e := range c.Evals {
		if e.Step < 0 || e.Step > c.Step || math.IsNaN(e.Loss) || math.IsInf(e.Loss, 0) {
			return fmt.Errorf("field evals[%d] is step %d loss %g", i, e.Step, e.Loss)
		}
	}
	if c.Best != nil && !slices.Contains(c.Evals, *c.Best) {
		return fmt.Errorf("field best (step %d, loss %g) is not among evals", c.Best.Step, c.Best.Loss)
	}
	if c.SinceBest < 0 {
		return fmt.Errorf("field since_best is %d", c.SinceBest)
	}
	if len(c.Tensors) == 0 {
		return fmt.Errorf("field tensors is empty")
	}
	seenT := map[string]bool{}
	for i, t := range c.Tensors {
		at := fmt.Sprintf("tensors[%d] (%s %s)", i, t.Role, t.Name)
		switch {
		case t.Role != roleAdapter && t.Role != roleWeights && t.Role != roleAdamM && t.Role != roleAdamV:
			return fmt.Errorf("%s: field role %q is not adapter, weights, adam_m or adam_v", at, t.Role)
		case (t.Role == roleAdapter) != (t.File == checkpointAdapter) || (t.Role == roleWeights) != (t.File == checkpointModel) ||
			(t.File != checkpointAdapter && t.File != checkpointModel && t.File != checkpointOptimizer):
			return fmt.Errorf("%s: field file %q does not hold %s tensors", at, t.File, t.Role)
		case t.Type != "f32":
			return fmt.Errorf("%s: field type %q, only f32 is written", at, t.Type)
		case seenT[t.Role+"/"+t.Name]:
			return fmt.Errorf("%s: listed twice", at)
		}
		seenT[t.Role+"/"+t.Name] = true
		n := int64(4)
		for _, d := range t.Shape {
			if d < 1 || d > maxDim {
				return fmt.Errorf("%s: field shape %v has a bad dimension", at, t.Shape)
			}
			n *= int64(d)
		}
		if len(t.Shape) == 0 || n != t.Bytes || t.Offset < 0 {
			return fmt.Errorf("%s: field bytes %d (offset %d) does not fit shape %v of f32", at, t.Bytes, t.Offset, t.Shape)
		}
	}
	return nil
}

// readTensors loads every tensor's bytes and checks them against the index.
func (c *Checkpoint) readTensors() error {
	c.data = map[string][]byte{}
	optPath := filepath.Join(c.dir, checkpointOptimizer)
	opt, err := os.ReadFile(optPath)
	if err != nil {
		return err
	}
	adPath := filepath.Join(c.dir, checkpointAdapter)
	for _, t := range c.Tensors {
		if t.Role == roleWeights {
			adPath = filepath.Join(c.dir, checkpointModel)
			break
		}
	}
	ad, err := gguf.Open(adPath)
	if err != nil {
		return err
	}
	defer ad.Close()
	adapterTensors := 0
	for _, t := range c.Tensors {
		var b []byte
		if t.File == checkpointOptimizer {
			if t.Offset+t.Bytes > int64(len(opt)) {
				return fmt.Errorf("%s: %s %s at offset %d, %d bytes, lies past the file's end (%d bytes)", optPath, t.Role, t.Name, t.Offset, t.Bytes, len(opt))
			}
			b = opt[t.Offset : t.Offset+t.Bytes]
		} else {
			adapterTensors++
			info, ok := ad.Tensor(t.Name)
			if !ok {
				return fmt.Errorf("%s: tensor %s, listed in the index, is missing", adPath, t.Name)
			}
			if info.Type != gguf.TypeF32 || !sameDims(info.Dims, t.Shape) {
				return fmt.Errorf("%s: tensor %s is %s %v, the index says f32 %v", adPath, t.Name, info.Type, info.Dims, t.Shape)
			}
			if b, err = ad.Data(t.Name); err != nil {
				return fmt.Errorf("%s: %w", adPath, err)
			}
			b = slices.Clone(b) // the file's mapping goes away with Close
		}
		if int64(len(b)) != t.Bytes {
			return fmt.Errorf("%s: tensor %s has %d bytes, the index says %d", filepath.Join(c.dir, t.File), t.Name, len(b), t.Bytes)
		}
		if crc := crc32.ChecksumIEEE(b); crc != t.CRC32 {
			return fmt.Errorf("%s: %s %s is corrupt (crc32 %08x, the index says %08x)", filepath.Join(c.dir, t.File), t.Role, t.Name, crc, t.CRC32)
		}
		c.data[t.Role+"/"+t.Name] = b
	}
	// A model file also holds the tensors full fine-tuning keeps fixed (RoPE factors).
	if len(ad.Tensors) != adapterTensors && filepath.Base(adPath) == checkpointAdapter {
		return fmt.Errorf("%s: holds %d tensors, the index lists %d", adPath, len(ad.Tensors), adapterTensors)
	}
	return nil
}

func sameDims(dims []int64, shape []int) bool {
	if len(dims) != len(shape) {
		return false
	}
	for i := range dims {
		if dims[i] != int64(shape[i]) {
			return false
		}
	}
	return true
}

// compatible reports why this checkpoint cannot continue a run of cfg on m with a
// training set of n examples.
func (c *Checkpoint) compatible(m *Model, cfg *Config, n int) error {
	at := filepath.Join(c.dir, checkpointIndex)
	want := CheckpointModel{Arch: m.HP.Arch, Layers: m.HP.Layers, Embd: m.HP.Embd, Vocab: m.HP.Vocab}
	got := c.Model
	got.Path = ""
	if got != want {
		return fmt.Errorf("trainer: checkpoint %s: field model is %s (%d layers, embedding %d, vocabulary %d), the model %s is %s (%d, %d, %d)",
			at, got.Arch, got.Layers, got.Embd, got.Vocab, m.Path, want.Arch, want.Layers, want.Embd, want.Vocab)
	}
	if c.Examples != n {
		return fmt.Errorf("trainer: checkpoint %s: field examples is %d, the training set has %d: resume needs the same data", at, c.Examples, n)
	}
	if err := sameTrajectory(c.Config, *cfg); err != nil {
		return fmt.Errorf("trainer: checkpoint %s: %w", at, err)
	}
	return nil
}

// trajectory holds the Config fields that decide which losses a run produces; a
// resumed run must agree with its checkpoint on all of them. The others (length,
// evaluation, saving, early stopping, callbacks) may change between lifetimes.
type trajectory struct {
	Method    string
	LoRA      LoRAConfig
	Optimizer OptimizerConfig
	Schedule  Schedule
	BatchSize int
	GradAccum int
	SeqLen    int
	Packing   bool
	Seed      uint64
	Pad       int32
}

func trajectoryOf(c Config) trajectory {
	return trajectory{c.Method, c.LoRA, c.Optimizer, c.Schedule, c.BatchSize, c.GradAccum, c.SeqLen, c.Packing, c.Seed, c.Pad}
}

// sameTrajectory names the first field where the checkpoint's config and the run's
// differ.
func sameTrajectory(saved, run Config) error {
	a, b := reflect.ValueOf(trajectoryOf(saved)), reflect.ValueOf(trajectoryOf(run))
	var diff func(path string, x, y reflect.Value) error
	diff = func(path string, x, y reflect.Value) error {
		if x.Kind() == reflect.Struct {
			for i := 0; i < x.NumField(); i++ {
				name := x.Type().Field(i).Name
				if path != "" {
					name = path + "." + name
				}
				if err := diff(name, x.Field(i), y.Field(i)); err != nil {
					return err
				}
			}
			return nil
		}
		if !reflect.DeepEqual(x.Interface(), y.Interface()) {
			hint := ""
			if path == "Schedule.Steps" {
				hint = " (to run longer with the same schedule, keep Schedule.Steps)"
			}
			return fmt.Errorf("field config.%s is %v, this run asks for %v%s", path, x.Interface(), y.Interface(), hint)
		}
		return nil
	}
	return diff("", a, b)
}

// restore puts a checkpoint's state into a fresh loop (with a new LoRA and optimizer).
func (l *loop) restore(c *Checkpoint) error {
	set := func(role string, ts []*ggml.Tensor) error {
		for i, t := range ts {
			name := l.opt.params[i].Name()
			b, ok := c.data[role+"/"+name]
			if !ok {
				return fmt.Errorf("trainer: checkpoint %s: %s tensor %s is missing from the index", c.dir, role, name)
			}
			if e := c.entry(role, name); !slices.Equal(e.Shape, t.Shape()) {
				return fmt.Errorf("trainer: checkpoint %s: %s tensor %s has shape %v, the LoRA needs %v", c.dir, role, name, e.Shape, t.Shape())
			}
			if err := t.SetBytes(b); err != nil {
				return fmt.Errorf("trainer: checkpoint %s: %s: %w", c.dir, name, err)
			}
		}
		return nil
	}
	params := l.tr.params()
	if len(c.Tensors) != 3*len(params) {
		return fmt.Errorf("trainer: checkpoint %s: field tensors lists %d tensors, the run trains %d (×3 with the moments)", c.dir, len(c.Tensors), len(params))
	}
	if err := errors.Join(set(paramRole(l.tr.file()), params), set(roleAdamM, l.opt.mom), set(roleAdamV, l.opt.vel)); err != nil {
		return err
	}
	l.opt.t = c.AdamStep
	if err := errors.Join(l.shuffle.UnmarshalBinary(c.ShuffleRNG), l.drop.UnmarshalBinary(c.DropoutRNG)); err != nil {
		return fmt.Errorf("trainer: checkpoint %s: %w", c.dir, err)
	}
	l.epoch, l.order, l.next, l.micro = c.Epoch, slices.Clone(c.Order), c.Next, c.MicroBatch
	if err := l.packOrder(); err != nil {
		return err
	}
	if l.next > l.epochLen() {
		return fmt.Errorf("trainer: checkpoint %s: field next is %d, past the epoch's %d sequences", c.dir, l.next, l.epochLen())
	}
	l.tokens, l.before = c.Tokens, time.Duration(c.ElapsedSec*float64(time.Second))
	l.evals, l.sinceBest, l.earlyStopped = slices.Clone(c.Evals), c.SinceBest, c.EarlyStopped
	if c.Best != nil {
		l.best = *c.Best
	}
	return nil
}

func (c *Checkpoint) entry(role, name string) CheckpointTensor {
	for _, t := range c.Tensors {
		if t.Role == role && t.Name == name {
			return t
		}
	}
	return CheckpointTensor{}
}

// paramRole is the index role of the trained tensors kept in file.
func paramRole(file string) string {
	if file == checkpointModel {
		return roleWeights
	}
	return roleAdapter
}

// writeBest writes the adapter (or model) of the best validation loss to runDir/best/,
// with best.json saying its step and loss.
func writeBest(runDir string, tr trainable, p EvalPoint) error {
	dir := filepath.Join(runDir, bestDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("trainer: best adapter: %w", err)
	}
	if err := tr.write(filepath.Join(dir, tr.file())); err != nil {
		return err
	}
	b, _ := json.Marshal(p)
	if err := writeFileAtomic(filepath.Join(dir, "best.json"), append(b, '\n')); err != nil {
		return fmt.Errorf("trainer: best adapter: %w", err)
	}
	return nil
}

// writeSynced writes data to a new file and syncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Sync(), f.Close())
}

// writeFileAtomic replaces path with data through a synced temporary file and rename.
func writeFileAtomic(path string, data []byte) error { return atomicfile.WriteFile(path, data, 0o644) }

// syncDir makes renames in dir durable (best effort).
func syncDir(dir string) { atomicfile.SyncDir(dir) }
