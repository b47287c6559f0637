package onnx_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/export/onnx"
	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/gguf"
)

// debianPython is the interpreter Debian's python3-onnx belongs to.
const debianPython = "/usr/bin/python3"

// TestOnnxChecker: the onnx package (a second, independent reader) accepts
// the files with onnx.checker's full check, and reads back the inputs,
// outputs, opset and initializers we meant to write. Skipped without
// Debian's python3-onnx, which is an optional second opinion.
func TestOnnxChecker(t *testing.T) {
	if err := exec.Command(debianPython, "-c", "import onnx").Run(); err != nil {
		t.Skipf("%s cannot import onnx (apt-get install python3-onnx): %v", debianPython, err)
	}
	spec := factory.Spec{Arch: "llama", Embd: 64, Layers: 2, Heads: 4, HeadsKV: 2, FF: 96, VocabSize: 100, Seed: 2, Type: gguf.TypeF16}
	path := filepath.Join(t.TempDir(), "model.gguf")
	require.NoError(t, factory.Init(spec, path))
	for _, opts := range []onnx.Options{{}, {KVCache: true, ExternalData: true}} {
		model, sum := exportModel(t, path, opts)
		script, err := filepath.Abs(filepath.Join("testdata", "check.py"))
		require.NoError(t, err)
		out, err := exec.Command(debianPython, script, model).CombinedOutput()
		require.NoError(t, err, "onnx.checker: %s", out)
		var got struct {
			IRVersion    int64             `json:"ir_version"`
			Opsets       map[string]int64  `json:"opsets"`
			Inputs       [][]any           `json:"inputs"`
			Outputs      [][]any           `json:"outputs"`
			Ops          []string          `json:"ops"`
			Nodes        int               `json:"nodes"`
			Initializers map[string][]any  `json:"initializers"`
			Metadata     map[string]string `json:"metadata"`
		}
		require.NoError(t, json.Unmarshal(out, &got), "%s", out)
		assert.Equal(t, int64(onnx.IRVersion), got.IRVersion)
		assert.Equal(t, map[string]int64{"": onnx.Opset}, got.Opsets)
		assert.Equal(t, sum.Nodes, got.Nodes)
		var names []string
		for _, in := range got.Inputs {
			names = append(names, in[0].(string))
		}
		assert.Equal(t, sum.Inputs, names)
		// elem_type 7 is INT64, 1 FLOAT, 10 FLOAT16.
		assert.Equal(t, []any{"input_ids", 7.0, []any{"batch_size", "sequence_length"}}, got.Inputs[0])
		assert.Equal(t, []any{"logits", 1.0, []any{"batch_size", "sequence_length", 100.0}}, got.Outputs[0])
		if opts.KVCache {
			assert.Equal(t, []any{"attention_mask", 7.0, []any{"batch_size", "total_sequence_length"}}, got.Inputs[1])
			assert.Equal(t, []any{"past_key_values.1.value", 1.0, []any{"batch_size", 2.0, "past_sequence_length", 16.0}}, got.Inputs[6])
			assert.Equal(t, []any{"present.1.value", 1.0, []any{"batch_size", 2.0, "total_sequence_length", 16.0}}, got.Outputs[4])
		}
		assert.Equal(t, []any{10.0, []any{32.0, 64.0}}, got.Initializers["model.layers.1.self_attn.k_proj.weight"], "F16, [out, in]")
		assert.Equal(t, []any{1.0, []any{64.0}}, got.Initializers["model.layers.0.input_layernorm.weight"])
		assert.Equal(t, []any{10.0, []any{100.0, 64.0}}, got.Initializers["lm_head.weight"])
		assert.Equal(t, "llama", got.Metadata["general.architecture"])
		assert.Subset(t, got.Ops, []string{"Gather", "Gemm", "MatMul", "Softmax", "ReduceMean", "Sqrt", "Div", "Sigmoid", "Where", "Range"})
		t.Logf("onnx.checker, KV cache %v, external data %v: %d nodes, ops %v", opts.KVCache, opts.ExternalData, got.Nodes, got.Ops)
	}
}
