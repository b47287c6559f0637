package trainer

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
)

// ModelOptions configure LoadModel.
type ModelOptions struct {
	Threads int  // CPU threads; 0 means runtime.NumCPU()
	GPU     bool // keep weights and compute on GPU 0 (a CUDA build); the CPU remains the fallback
	// Trainable loads every weight as F32 and marks it trainable, for full fine-tuning
	// (Config.Method MethodFull). The file must hold F32, F16 or BF16 weights.
	Trainable bool
	// KeepTransposed keeps a transposed copy of every frozen F32/F16/BF16 weight matrix for
	// the backward pass to read, instead of transposing each at every step: faster LoRA
	// steps for a second copy of those weights in memory. Ignored with Trainable.
	KeepTransposed bool
	// GenericOps builds attention and adapters from ggml's generic ops on the CPU too,
	// where they otherwise run as fused ops (ggml.CausalAttention, ggml.LoRA): for
	// comparisons. GPU graphs always use the generic ops.
	GenericOps bool
	// ComputeType is the type of the backward pass's products through the frozen weights
	// (bitsandbytes' compute dtype, autocast's for an F32 base): a quantized base's weights
	// are dequantized to it, an F32 base's rounded to it (F16 and BF16 bases keep theirs);
	// the forward pass and the loss stay at the weights' own precision. "f32", "f16" or "bf16".
	// "" picks, where the CPU holds the weights: bf16 where it multiplies BF16 natively
	// (AVX512-BF16), where those products run about twice as fast as F32 ones; else f16
	// on x86 with F16C and the fused ops (about 1.4× on AVX2, each product's gradient
	// rows scaled into F16's range); else f32, and f32 on a GPU.
	ComputeType string
	// NoRepack keeps every quantized weight in its file's layout. Otherwise, on the CPU
	// with the fused ops, the frozen block weights ggml.CanRepack takes (Q4_K on x86 with
	// AVX2) go to llama.cpp's repacking buffer, whose interleaved products made a 3B
	// Q4_K_M forward pass 1.7× faster (llama.cpp's own prompt processing uses it too).
	NoRepack bool
}

// computeType resolves ModelOptions.ComputeType for weights on a GPU or the CPU.
func (o ModelOptions) computeType(gpu bool) (ggml.Type, error) {
	if o.ComputeType == "" {
		if !gpu && ggml.CPUHasBF16() {
			return ggml.TypeBF16, nil
		}
		// F16 products keep small gradients only through the fused ops' scaling
		// (ggml.Graph.OutProdsAsMatMul).
		if !gpu && !o.GenericOps && ggml.CPUHasF16C() {
			return ggml.TypeF16, nil
		}
		return ggml.TypeF32, nil
	}
	return ParseComputeType(o.ComputeType)
}

// ParseComputeType checks a ModelOptions.ComputeType other than "": f32, f16 or bf16.
func ParseComputeType(s string) (ggml.Type, error) {
	t, err := ggml.ParseType(s)
	if err != nil || (t != ggml.TypeF32 && t != ggml.TypeF16 && t != ggml.TypeBF16) {
		return 0, fmt.Errorf("compute type %q: want f32, f16 or bf16", s)
	}
	return t, nil
}

// Model is a GGUF causal language model loaded into a ggml weights buffer. It owns its
// backends, weights and scheduler; Close frees them. It is not safe for concurrent use.
type Model struct {
	Arch *Arch
	HP   HParams
	Path string
	BOS  int32 // tokenizer.ggml.bos_token_id, or -1
	EOS  int32 // tokenizer.ggml.eos_token_id, or -1

	cpu, gpu *ggml.Backend
	ctx      *ggml.Context
	buf      *ggml.Buffer
	// repackCtx and repackBuf hold the weights in the CPU's repacking buffer
	// (ModelOptions.NoRepack); nil when there are none.
	repackCtx *ggml.Context
	repackBuf *ggml.Buffer
	// transposed holds, by weight name, the copies ModelOptions.KeepTransposed keeps.
	transposed    map[string]*ggml.Tensor
	transposedCtx *ggml.Context
	transposedBuf *ggml.Buffer
	sched         *ggml.Scheduler
	graphNodes    int
	kvType        ggml.Type // type K and V are rounded to in attention: F32, or F16 to mimic llama.cpp's cache
	// geluOp uses ggml's gelu op, which llama.cpp's CPU backend evaluates through an
	// f16 table, instead of the differentiable exact GELU. ggml cannot differentiate
	// the op: only forward passes compared with libllama set it.
	geluOp    bool
	globals   map[string]*ggml.Tensor
	blocks    []map[string]*ggml.Tensor
	trainable bool
	// genericOps: ModelOptions.GenericOps.
	genericOps bool
	// computeType: ModelOptions.ComputeType, resolved.
	computeType ggml.Type
	order       []*ggml.Tensor // every weight, in file order
	params      []*ggml.Tensor // the weights full fine-tuning trains
}

// LoadModel reads path, validates its architecture, hyper-parameters and tensor shapes
// in Go, and copies its weights into a ggml buffer. The caller must Close the Model.
func LoadModel(path string, opts ModelOptions) (m *Model, err error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trainer: load model: %w", err)
	}
	defer f.Close()
	hp, err := readHParams(f.Meta)
	if err != nil {
		return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
	}
	arch, err := lookupArch(hp.Arch)
	if err != nil {
		return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
	}
	if arch.ReadHParams != nil {
		if err := arch.ReadHParams(f.Meta, &hp); err != nil {
			return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
		}
	}
	te, ok := f.Tensor(tokEmbd)
	if !ok || len(te.Dims) != 2 || te.Dims[1] < 1 || te.Dims[1] > maxDim {
		return nil, fmt.Errorf("trainer: load model %s: missing or malformed %s", path, tokEmbd)
	}
	hp.Vocab = int(te.Dims[1])
	if err := checkVocab(f); err != nil {
		return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
	}

	computeT, err := opts.computeType(opts.GPU)
	if err != nil {
		return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
	}
	m = &Model{Arch: arch, HP: hp, Path: path, BOS: -1, EOS: -1, kvType: ggml.TypeF32, trainable: opts.Trainable,
		genericOps: opts.GenericOps, computeType: computeT}
	defer func() {
		if err != nil {
			m.Close()
			m = nil
		}
	}()
	for key, dst := range map[string]*int32{"tokenizer.ggml.bos_token_id": &m.BOS, "tokenizer.ggml.eos_token_id": &m.EOS} {
		if v, e := f.Meta.Int(key); e == nil && v >= 0 && v < int64(hp.Vocab) {
			*dst = int32(v)
		}
	}

	type pending struct {
		t    *ggml.Tensor
		name string
	}
	var todo []pending
	nTensors := len(arch.Globals) + hp.Layers*len(arch.Block)
	if m.ctx, err = ggml.NewContext(nTensors+1, 0); err != nil {
		return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
	}
	add := func(spec TensorSpec, name string) (*ggml.Tensor, error) {
		info, ok := f.Tensor(name)
		if !ok {
			if spec.Optional {
				return nil, nil
			}
			return nil, fmt.Errorf("tensor %s is missing (%s.block_count is %d)", name, hp.Arch, hp.Layers)
		}
		if err := checkShape(spec, info, hp); err != nil {
			return nil, err
		}
		typ := ggml.Type(info.Type)
		if !typ.Valid() || typ == ggml.TypeI8 || typ == ggml.TypeI16 || typ == ggml.TypeI32 || typ == ggml.TypeI64 || typ == ggml.TypeF64 {
			return nil, fmt.Errorf("tensor %s has type %s, which ecotune cannot train on", name, info.Type)
		}
		if len(spec.Dims) == 1 && typ != ggml.TypeF32 {
			return nil, fmt.Errorf("tensor %s is %s; norm weights and biases must be f32", name, typ)
		}
		if opts.Trainable {
			switch typ {
			case ggml.TypeF32, ggml.TypeF16, ggml.TypeBF16:
				// AdamW updates F32 parameters in place.
				typ = ggml.TypeF32
			default:
				return nil, fmt.Errorf("tensor %s is %s; full fine-tuning needs F32, F16 or BF16 weights (LoRA trains on quantized ones)", name, typ)
			}
		}
		ne := make([]int, len(info.Dims))
		for i, d := range info.Dims {
			ne[i] = int(d)
		}
		ctx := m.ctx
		if !opts.NoRepack && !opts.GPU && !opts.Trainable && !opts.GenericOps && len(ne) == 2 &&
			strings.HasPrefix(name, "blk.") && ggml.CanRepack(typ, ne[1]) {
			if m.repackCtx == nil {
				if m.repackCtx, err = ggml.NewContext(nTensors, 0); err != nil {
					return nil, err
				}
			}
			ctx = m.repackCtx
		}
		var t *ggml.Tensor
		if err := ggml.Build(func() {
			t = ctx.NewTensor(typ, ne...).SetName(name)
		}); err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		m.order = append(m.order, t)
		// RoPE frequency factors are constants of the position encoding, with no
		// gradient through ggml's rope: they stay fixed in full fine-tuning.
		if opts.Trainable && name != ropeFreqs && name != ropeFactorsLong && name != ropeFactorsShort {
			t.SetParam()
			m.params = append(m.params, t)
		}
		todo = append(todo, pending{t, name})
		return t, nil
	}
	m.globals = map[string]*ggml.Tensor{}
	for _, s := range arch.Globals {
		t, err := add(s, s.Name)
		if err != nil {
			return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
		}
		if t != nil {
			m.globals[s.Name] = t
		}
	}
	m.blocks = make([]map[string]*ggml.Tensor, hp.Layers)
	for l := range m.blocks {
		m.blocks[l] = map[string]*ggml.Tensor{}
		for _, s := range arch.Block {
			t, err := add(s, blockName(l, s.Name))
			if err != nil {
				return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
			}
			if t != nil {
				m.blocks[l][s.Name] = t
			}
		}
	}

	if arch.Check != nil {
		if err := arch.Check(m); err != nil {
			return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
		}
	}

	if m.cpu, err = ggml.NewCPUBackend(opts.Threads); err != nil {
		return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
	}
	backends := []*ggml.Backend{m.cpu}
	weightsOn := m.cpu
	if opts.GPU {
		if m.gpu, err = ggml.NewGPUBackend(0); err != nil {
			return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
		}
		backends = []*ggml.Backend{m.gpu, m.cpu}
		weightsOn = m.gpu
	}
	if m.buf, err = m.ctx.AllocTensors(weightsOn); err != nil {
		return nil, fmt.Errorf("trainer: load model %s: weights: %w", path, err)
	}
	m.buf.MarkWeights()
	if m.repackCtx != nil {
		if m.repackBuf, err = m.repackCtx.AllocRepacked(); err != nil {
			return nil, fmt.Errorf("trainer: load model %s: weights: %w", path, err)
		}
		m.repackBuf.MarkWeights()
	}
	for _, p := range todo {
		data, err := f.Data(p.name)
		if err != nil {
			return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
		}
		if info, _ := f.Tensor(p.name); ggml.Type(info.Type) != p.t.Type() {
			if data, err = convertWeights(data, ggml.Type(info.Type), p.t); err != nil {
				return nil, fmt.Errorf("trainer: load model %s: tensor %s: %w", path, p.name, err)
			}
			err = p.t.SetBytes(data)
		} else {
			err = copyReleasing(f, p.name, p.t, data)
		}
		if err != nil {
			return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
		}
	}
	if opts.KeepTransposed && !opts.Trainable {
		if err := m.keepTransposed(weightsOn); err != nil {
			return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
		}
	}
	// A training graph has the forward nodes (about 70 per block with LoRA on every module), their gradients and
	// the helper nodes of the backward pass.
	m.graphNodes = max(4096, 512*(hp.Layers+2))
	if m.sched, err = ggml.NewScheduler(backends, m.graphNodes); err != nil {
		return nil, fmt.Errorf("trainer: load model %s: %w", path, err)
	}
	return m, nil
}

// copyReleasing copies data, the named tensor's bytes as mapped from f, into
// t a piece at a time, dropping each mapped piece from the resident set once copied
// (gguf.File.Release): the pages of a mapping count in it until the file is closed, so
// a plain copy would make loading peak at twice the weights (3.8 GB for a 3B model
// quantized to Q4_K_M), and one whole tensor at a time still at the weights and the
// largest of them (a 128,256-token vocabulary's embeddings: 320 MB in Q6_K).
func copyReleasing(f *gguf.File, name string, t *ggml.Tensor, data []byte) error {
	if len(data) != t.NBytes() {
		return t.SetBytes(data) // SetBytes says what is wrong
	}
	if t.Repacked() { // written whole (a Q4_K matrix of a layer: tens of MB at most)
		if err := t.SetBytes(data); err != nil {
			return err
		}
		return f.Release(name, 0, int64(len(data)))
	}
	const piece = 32 << 20
	for off := 0; off < len(data); off += piece {
		n := min(piece, len(data)-off)
		if err := t.SetBytesAt(data[off:off+n], off); err != nil {
			return err
		}
		if err := f.Release(name, int64(off), int64(n)); err != nil {
			return err
		}
	}
	return nil
}

func blockName(l int, name string) string { return fmt.Sprintf("blk.%d.%s", l, name) }

func checkShape(spec TensorSpec, info gguf.TensorInfo, hp HParams) error {
	want := make([]int64, len(spec.Dims))
	for i, d := range spec.Dims {
		want[i] = int64(d.size(hp))
	}
	got := info.Dims
	for len(got) > len(want) && got[len(got)-1] == 1 {
		got = got[:len(got)-1]
	}
	if len(got) != len(want) {
		return fmt.Errorf("tensor %s has shape %v, the hyper-parameters say %v", info.Name, info.Dims, want)
	}
	for i := range want {
		if got[i] != want[i] {
			return fmt.Errorf("tensor %s has shape %v, the hyper-parameters say %v", info.Name, info.Dims, want)
		}
	}
	return nil
}

// Weight returns the model's tensor named as in the GGUF file, or nil.
func (m *Model) Weight(name string) *ggml.Tensor {
	if t, ok := m.globals[name]; ok {
		return t
	}
	var l int
	var rest string
	if n, _ := fmt.Sscanf(name, "blk.%d.%s", &l, &rest); n == 2 && l >= 0 && l < len(m.blocks) {
		return m.blocks[l][rest]
	}
	return nil
}

// ComputeType is the type of the backward pass's products through the frozen weights
// (ModelOptions.ComputeType, resolved).
func (m *Model) ComputeType() ggml.Type { return m.computeType }

// fusedOps reports whether graphs compute attention and adapters with ggml's fused CPU
// ops: unless asked not to, when nothing runs on a GPU (the CUDA backend has no such
// ops) and K and V stay F32 (not rounded to F16 as llama.cpp's cache is, for parity
// tests).
func (m *Model) fusedOps() bool {
	return !m.genericOps && m.gpu == nil && m.kvType == ggml.TypeF32
}

// Close frees the scheduler, weights and backends. Safe to call twice.
func (m *Model) Close() error {
	if m == nil {
		return nil
	}
	err := errors.Join(m.sched.Close(), m.transposedBuf.Close(), m.transposedCtx.Close(), m.repackBuf.Close(), m.repackCtx.Close(),
		m.buf.Close(), m.ctx.Close(), m.gpu.Close(), m.cpu.Close())
	m.sched, m.transposedBuf, m.transposedCtx, m.repackBuf, m.repackCtx, m.buf, m.ctx, m.gpu, m.cpu = nil, nil, nil, nil, nil, nil, nil, nil, nil
	return err
}

// SetThreads changes the number of CPU threads used for computing.
func (m *Model) SetThreads(n int) error {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	return m.cpu.SetThreads(n)
}

// convertWeights converts data of type from to F32 for t (full fine-tuning trains F32).
func convertWeights(data []byte, from ggml.Type, t *ggml.Tensor) ([]byte, error) {
	v, err := ggml.Dequantize(from, data, t.Elements())
	if err != nil {
		return nil, err
	}
	return ggml.Quantize(ggml.TypeF32, v, t.Ne(0))
}

// Params is the number of weights the model holds.
func (m *Model) Params() int64 {
	var n int64
	for _, t := range m.order {
		n += int64(t.Elements())
	}
	return n
}
