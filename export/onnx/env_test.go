package onnx_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/export/onnx"
	"github.com/ecotune/ecotune/internal/llamaref"
	"github.com/ecotune/ecotune/internal/testenv"
)

func TestMain(m *testing.M) {
	bindings.SetLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}

// exportModel exports model to a temporary .onnx file and returns its path.
func exportModel(t testing.TB, model string, opts onnx.Options) (string, *onnx.Summary) {
	t.Helper()
	opts.Model = model
	opts.Out = filepath.Join(t.TempDir(), "model.onnx")
	sum, err := onnx.Export(context.Background(), opts)
	require.NoError(t, err)
	return opts.Out, sum
}

// feed is one input of an onnxruntime run: int64 or float32 values.
type feed struct {
	dims []int64
	i64  []int64
	f32  []float32
}

// output is one result of an onnxruntime run.
type output struct {
	dims []int64
	data []float32
}

// ort runs model in onnxruntime-node (testdata/run.mjs) and returns every output.
func ort(t testing.TB, model string, feeds map[string]feed) map[string]output {
	t.Helper()
	node, ortDir := testenv.ONNXRuntime(t)
	dir := t.TempDir()
	type reqFeed struct {
		Type string  `json:"type"`
		Dims []int64 `json:"dims"`
		File string  `json:"file"`
	}
	req := struct {
		ORT   string             `json:"ort"`
		Model string             `json:"model"`
		Feeds map[string]reqFeed `json:"feeds"`
		Out   string             `json:"out"`
	}{ORT: ortDir, Model: model, Feeds: map[string]reqFeed{}, Out: dir}
	for name, f := range feeds {
		var raw []byte
		typ := "float32"
		if f.f32 == nil {
			typ = "int64"
			raw = make([]byte, 8*len(f.i64))
			for i, v := range f.i64 {
				binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
			}
		} else {
			raw = make([]byte, 4*len(f.f32))
			for i, v := range f.f32 {
				binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
			}
		}
		file := filepath.Join(dir, "in-"+name+".bin")
		require.NoError(t, os.WriteFile(file, raw, 0o644))
		req.Feeds[name] = reqFeed{Type: typ, Dims: f.dims, File: file}
	}
	js, err := json.Marshal(req)
	require.NoError(t, err)
	reqFile := filepath.Join(dir, "request.json")
	require.NoError(t, os.WriteFile(reqFile, js, 0o644))
	script, err := filepath.Abs(filepath.Join("testdata", "run.mjs"))
	require.NoError(t, err)
	out, err := exec.Command(node, script, reqFile).CombinedOutput()
	require.NoError(t, err, "onnxruntime: %s", out)

	var dims map[string][]int64
	js, err = os.ReadFile(filepath.Join(dir, "outputs.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(js, &dims))
	res := map[string]output{}
	for name, d := range dims {
		raw, err := os.ReadFile(filepath.Join(dir, name+".bin"))
		require.NoError(t, err)
		vals := make([]float32, len(raw)/4)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		res[name] = output{dims: d, data: vals}
	}
	return res
}

// decoderFeeds are the inputs of one unpadded sequence starting at position start.
func decoderFeeds(tokens []int32, start int64) map[string]feed {
	n := int64(len(tokens))
	ids, pos := make([]int64, n), make([]int64, n)
	for i, tok := range tokens {
		ids[i], pos[i] = int64(tok), start+int64(i)
	}
	mask := make([]int64, start+n)
	for i := range mask {
		mask[i] = 1
	}
	return map[string]feed{
		"input_ids":      {dims: []int64{1, n}, i64: ids},
		"attention_mask": {dims: []int64{1, start + n}, i64: mask},
		"position_ids":   {dims: []int64{1, n}, i64: pos},
	}
}

// llamaLogits decodes tokens from position 0 with libllama and returns every
// position's logits, concatenated.
func llamaLogits(t testing.TB, path string, tokens []int32) []float32 {
	t.Helper()
	m, err := bindings.LoadModel(path, bindings.ModelOptions{NoRepack: true})
	require.NoError(t, err)
	defer m.Close()
	c, err := bindings.NewContext(m, bindings.ContextOptions{NCtx: 256, NBatch: 256, Threads: 2, FlashAttn: bindings.FlashAttnDisabled})
	require.NoError(t, err)
	defer c.Close()
	return llamaref.Flat(llamaref.Logits(t, c, tokens))
}

// maxAbsDiff returns max |a-b| and the range max-min of b.
func maxAbsDiff(a, b []float32) (diff, rng float64) { return llamaref.MaxAbsDiff(a, b) }

// randomF32 returns n normal values of standard deviation std as F32 bytes.
func randomF32(n int, std float64, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 17))
	out := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(float32(r.NormFloat64()*std)))
	}
	return out
}
