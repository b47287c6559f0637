package trainer

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/ggml"
)

// This file answers, without a GPU, whether the CUDA backend would run every node of a
// training step: cudaRejects restates what the pinned ggml-cuda.cu's supports_op
// accepts, and the asserts of the kernels behind it, for the ops the trainer's generic
// graph (the one a model on a GPU gets) is made of. On a machine with a GPU,
// TestQuantizedBases counts where the scheduler really puts each node; this test keeps
// CI honest in between, and names any op that a graph change adds and nobody checked.

// contiguousMN is ggml_is_contiguous_m_n: dimensions 1..m may be strided, those above m
// must follow on from each other.
func contiguousMN(t *ggml.Tensor, m int) bool {
	next := t.Type().TypeSize()
	if t.Ne(0) != t.Type().BlockSize() && t.Nb(0) != next {
		return false
	}
	next *= t.Ne(0) / t.Type().BlockSize()
	for i := 1; i < 4; i++ {
		if i > m {
			if t.Ne(i) != 1 && t.Nb(i) != next {
				return false
			}
			next *= t.Ne(i)
		} else {
			next = t.Ne(i) * t.Nb(i)
		}
	}
	return true
}

// contiguousRows is ggml_is_contiguous_rows.
func contiguousRows(t *ggml.Tensor) bool {
	return t.Ne(0) == t.Type().BlockSize() || t.Nb(0) == t.Type().TypeSize()
}

// cudaMatMulTypes and cudaGetRowsTypes are the weight types, of those ecotune loads,
// that the pinned CUDA backend multiplies by and looks rows up in.
var (
	cudaMatMulTypes = typeSet(ggml.TypeF32, ggml.TypeF16, ggml.TypeBF16, ggml.TypeQ4_0, ggml.TypeQ4_1, ggml.TypeQ5_0,
		ggml.TypeQ5_1, ggml.TypeQ8_0, ggml.TypeQ2_K, ggml.TypeQ3_K, ggml.TypeQ4_K, ggml.TypeQ5_K, ggml.TypeQ6_K,
		ggml.TypeIQ4_NL, ggml.TypeIQ4_XS, ggml.TypeMXFP4)
	cudaGetRowsTypes = typeSet(ggml.TypeF32, ggml.TypeF16, ggml.TypeBF16, ggml.TypeI32, ggml.TypeQ4_0, ggml.TypeQ4_1,
		ggml.TypeQ5_0, ggml.TypeQ5_1, ggml.TypeQ8_0, ggml.TypeQ2_K, ggml.TypeQ3_K, ggml.TypeQ4_K, ggml.TypeQ5_K,
		ggml.TypeQ6_K, ggml.TypeIQ4_XS, ggml.TypeIQ4_NL, ggml.TypeMXFP4)
)

func typeSet(ts ...ggml.Type) map[ggml.Type]bool {
	m := map[ggml.Type]bool{}
	for _, t := range ts {
		m[t] = true
	}
	return m
}

// cudaRejects says why the pinned CUDA backend would not run node n, or would assert
// on it: "" where it runs it. An op missing here is rejected until someone checks it.
func cudaRejects(n *ggml.Tensor) string {
	s0, s1 := n.Src(0), n.Src(1)
	switch n.Op() {
	case "NONE", "RESHAPE", "VIEW", "PERMUTE", "TRANSPOSE", "CONT", "DUP", "SOFT_MAX", "ARANGE":
		return ""
	// SQR, SQRT, LOG and SCALE pass supports_op whatever their layout, but the first
	// three assert a contiguous source in their kernel and SCALE reads it flat.
	case "SQR", "SQRT", "LOG", "SCALE", "EXP", "NEG", "SIGMOID", "SOFTPLUS", "SILU", "TANH", "GELU", "GELU_ERF", "GELU_QUICK", "ABS", "SGN", "STEP", "RELU":
		if !contiguousMN(s0, 0) {
			return "unary on non-contiguous src0"
		}
	case "SWIGLU", "GEGLU", "REGLU":
		if !contiguousMN(s0, 1) {
			return "glu on src0 not contiguous_1"
		}
	case "MUL_MAT":
		if !cudaMatMulTypes[s0.Type()] {
			return "mul_mat of " + s0.Type().String()
		}
		if s0.Nb(0) != s0.Type().TypeSize() || s1.Nb(0) != s1.Type().TypeSize() {
			return "mul_mat with strided rows"
		}
		if s1.Type() == ggml.TypeF16 && s0.Type() != ggml.TypeF16 {
			return "mul_mat f16 b"
		}
	case "OUT_PROD":
		if n.Type() != ggml.TypeF32 || s0.Type() != ggml.TypeF32 || s1.Type() != ggml.TypeF32 {
			return "out_prod types"
		}
		if s1.Nb(0) > s1.Nb(1) {
			if s1.Nb(1) != 4 {
				return "out_prod assert nb11"
			}
		} else if s1.Nb(0) != 4 {
			return "out_prod assert nb10"
		}
	case "ROPE", "ROPE_BACK":
		if s0.Nb(0) != s0.Type().TypeSize() || !contiguousMN(s0, 2) {
			return "rope src0 layout"
		}
	case "RMS_NORM", "NORM":
		if !contiguousRows(s0) {
			return "norm rows"
		}
	case "RMS_NORM_BACK", "SILU_BACK", "SOFT_MAX_BACK":
		// supports_op asks this of src0 only, but the kernels index src1 flat too.
		if !contiguousMN(s0, 0) || !contiguousMN(s1, 0) || s0.Type() != ggml.TypeF32 || s1.Type() != ggml.TypeF32 {
			return "source of a backward op not contiguous F32"
		}
	case "ACC":
		if !contiguousMN(s0, 0) || !contiguousMN(s1, 0) {
			return "acc non-contiguous"
		}
	case "SUM", "SUM_ROWS", "MEAN":
		if !contiguousRows(s0) {
			return "sum rows"
		}
	case "REPEAT":
		if s0.Type() != ggml.TypeF32 && s0.Type() != ggml.TypeF16 {
			return "repeat type"
		}
	case "REPEAT_BACK":
		if n.Type() != ggml.TypeF32 || s0.Ne(2)*s0.Ne(3) > 1<<15 {
			return "repeat_back"
		}
	case "ADD", "SUB", "MUL", "DIV":
		for _, t := range []*ggml.Tensor{n, s0, s1} {
			if t.Type() != ggml.TypeF32 && t.Type() != ggml.TypeF16 {
				return "binary types"
			}
		}
	case "CPY":
		a, b := s0.Type(), s1.Type()
		fl := func(t ggml.Type) bool { return t == ggml.TypeF32 || t == ggml.TypeF16 || t == ggml.TypeBF16 }
		if !(fl(a) && fl(b) || a == ggml.TypeF32 && b == ggml.TypeI32 || a == ggml.TypeI32 && b == ggml.TypeF32 || a == ggml.TypeF32 && (b == ggml.TypeQ8_0 || b == ggml.TypeQ4_0 || b == ggml.TypeIQ4_NL)) {
			return "cpy types " + a.String() + "->" + b.String()
		}
	case "GET_ROWS":
		if !cudaGetRowsTypes[s0.Type()] {
			return "get_rows of " + s0.Type().String()
		}
		switch s0.Type() {
		case ggml.TypeIQ4_NL, ggml.TypeMXFP4:
			if s0.Ne(0)%256 != 0 {
				return "get_rows iq4_nl partial superblock"
			}
		}
		if s0.Nb(0) != s0.Type().TypeSize() {
			return "get_rows nb0"
		}
	case "GET_ROWS_BACK":
		if n.Type() != ggml.TypeF32 || s0.Type() != ggml.TypeF32 || n.Ne(2) != 1 || n.Ne(3) != 1 || !contiguousMN(s0, 0) || !contiguousMN(s1, 0) {
			return "get_rows_back"
		}
	case "OPT_STEP_ADAMW":
		for i := 0; i < 5; i++ {
			if s := n.Src(i); s == nil || s.Type() != ggml.TypeF32 || !contiguousMN(s, 0) {
				return "adamw source not contiguous F32"
			}
		}
	case "CROSS_ENTROPY_LOSS", "CROSS_ENTROPY_LOSS_BACK":
		for i := 0; i < 3; i++ {
			if s := n.Src(i); s != nil && !contiguousMN(s, 0) {
				return "cross entropy non-contiguous"
			}
		}
	default:
		return "unknown op " + n.Op()
	}
	return ""
}

// TestGenericStepRunsOnCUDA builds the generic training step, as a model on a GPU gets
// it, for every architecture case (Q8_0 weights), a llama on each QLoRA base type (with
// IQ4_NL embeddings of 576-value rows too) and a full fine-tune, with dropout and with
// gradient checkpointing, and checks every node of it and of the optimizer's graphs
// against cudaRejects.
func TestGenericStepRunsOnCUDA(t *testing.T) {
	exs := packTestExamples()
	packed, err := NewPackedBatch([][]Example{{exs[0], exs[1], exs[2]}, {exs[3], exs[4]}}, 25, 0)
	require.NoError(t, err)
	check := func(t *testing.T, m *Model, lora *LoRA, params []*ggml.Tensor) {
		for _, c := range []struct {
			b  *Batch
			ck checkpointing
		}{{testBatch(t), checkpointNone}, {testBatch(t), checkpointFull}, {testBatch(t), checkpointKeepFFN}, {testBatch(t), checkpointKeepAll}, {packed, checkpointNone}} {
			b, ck := c.b, c.ck
			s, opt := testStep(t, m, lora, params, b, 0.1, ck)
			rejected := map[string]int{}
			for _, g := range []*ggml.Graph{s.g, opt.norm, opt.update} {
				for i := 0; i < g.Len(); i++ {
					n := g.Node(i)
					if why := cudaRejects(n); why != "" {
						rejected[fmt.Sprintf("%s (%s)", n.Op(), why)]++
					}
				}
			}
			assert.Empty(t, rejected, "nodes CUDA would not run (checkpointing %v, packed %v)", ck, b.Starts != nil)
		}
	}
	withLoRA := func(t *testing.T, path string) {
		m, l := loadWithRandomLoRA(t, path, ModelOptions{Threads: 1, GenericOps: true})
		check(t, m, l, l.params())
	}
	for _, ac := range archCases {
		ac.weights = ggml.TypeQ8_0
		t.Run(ac.name, func(t *testing.T) { withLoRA(t, writeArchModel(t, ac)) })
	}
	for _, typ := range []ggml.Type{ggml.TypeF16, ggml.TypeBF16, ggml.TypeQ4_0, ggml.TypeQ4_K, ggml.TypeIQ4_NL} {
		t.Run("llama-"+typ.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.gguf")
			writeRandomLlama(t, path, typ, false)
			withLoRA(t, path)
		})
	}
	t.Run("llama-iq4_nl-embeddings-576", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "model.gguf")
		writeLlama(t, path, randomLlama{embd: 576, matrices: ggml.TypeQ8_0, embeddings: ggml.TypeIQ4_NL})
		withLoRA(t, path)
	})
	t.Run("full", func(t *testing.T) {
		requireStories(t)
		m, err := loadTestModel(storiesPath, ModelOptions{Threads: 1, Trainable: true, GenericOps: true})
		require.NoError(t, err)
		defer m.Close()
		check(t, m, nil, fullWeights{m}.params())
	})
}
