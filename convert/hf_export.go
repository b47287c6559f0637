package convert

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/safetensors"
)

// DefaultShardBytes is the most tensor data ExportHF puts in one
// safetensors file (transformers' default max_shard_size).
const DefaultShardBytes = 5_000_000_000

// ExportOptions says what ExportHF writes.
type ExportOptions struct {
	Model string // GGUF model (llama, qwen2, phi2, phi3, gemma2)
	Dir   string // output folder, created if missing
	// DType is the safetensors dtype of the weights: "" keeps F32, F16 and
	// BF16 tensors as they are (quantized ones become F32), or "f32", "f16", "bf16".
	DType string
	// ShardBytes bounds each safetensors file; 0 means DefaultShardBytes.
	ShardBytes int64
	// Dequantize converts n values of a quantized type to float32 (cmd/ecotune
	// passes quant.Dequantize); nil refuses quantized tensors.
	Dequantize func(t gguf.Type, data []byte, n int) ([]float32, error)
	Progress   func(Progress)
}

// ExportSummary describes what ExportHF wrote.
type ExportSummary struct {
	Arch    string
	Tensors int
	Bytes   int64
	Files   []string // written, relative to Dir
	Notes   []string
}

// ExportHF writes a GGUF model as a Hugging Face checkpoint folder that
// transformers and vLLM load: config.json, safetensors shards (with
// model.safetensors.index.json when there are several), the tokenizer
// (tokenizer.json for BPE, tokenizer.model for SentencePiece) and
// tokenizer_config.json with the chat template. It undoes what Convert does:
// llama's q/k rows go back to transformers' order, gemma2's norms lose their
// +1. Each file is written through a temporary file and renamed.
func ExportHF(ctx context.Context, o ExportOptions) (*ExportSummary, error) {
	f, err := gguf.Open(o.Model)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	defer f.Close()
	archName, err := f.Meta.String("general.architecture")
	if err != nil {
		return nil, fmt.Errorf("convert: %s: %w", o.Model, err)
	}
	a, err := archByName(archName)
	if err != nil {
		return nil, fmt.Errorf("convert: %s: %w", o.Model, err)
	}
	h, err := hparamsOfGGUF(f, a)
	if err != nil {
		return nil, fmt.Errorf("convert: %s: %w", o.Model, err)
	}
	var outType gguf.Type
	if o.DType != "" {
		if outType, err = parseType(o.DType); err != nil {
			return nil, err
		}
	}
	voc, err := readGGUFVocab(f.Meta)
	if err != nil {
		return nil, fmt.Errorf("convert: %s: tokenizer: %w", o.Model, err)
	}
	sum := &ExportSummary{Arch: a.name}

	// Plan every tensor before writing anything.
	var tensors []shardTensor
	used := map[string]bool{}
	for _, tm := range a.tensors(h) {
		info, ok := f.Tensor(tm.gguf)
		if !ok {
			if tm.optional && h.tied {
				continue
			}
			return nil, fmt.Errorf("convert: %s: tensor %s is missing", o.Model, tm.gguf)
		}
		used[tm.gguf] = true
		want := tm.ggufDims()
		if !sameDims(info.Dims, want) {
			return nil, fmt.Errorf("convert: %s: tensor %s has shape %v, the metadata implies %v", o.Model, tm.gguf, info.Dims, want)
		}
		dt, err := exportDType(info.Type, outType, len(tm.shape), o.Dequantize != nil)
		if err != nil {
			return nil, fmt.Errorf("convert: %s: tensor %s: %w", o.Model, tm.gguf, err)
		}
		tm, info := tm, info
		tensors = append(tensors, shardTensor{name: tm.hf, dtype: dt, shape: tm.shape,
			data: func(w io.Writer) error { return exportTensor(w, f, info, tm, dt, o.Dequantize) }})
	}
	ropeScaling, err := exportRopeScaling(f, a, h, used, sum)
	if err != nil {
		return nil, err
	}
	for _, t := range f.Tensors {
		if !used[t.Name] {
			return nil, fmt.Errorf("convert: %s: tensor %s has no Hugging Face counterpart in a %s model", o.Model, t.Name, a.name)
		}
	}
	cfg := hfConfigOf(f, a, h, voc)
	if ropeScaling != nil {
		cfg["rope_scaling"] = ropeScaling
	}
	cfg["torch_dtype"] = torchDType(tensors)

	var tokFile string
	var tokData []byte
	switch voc.model {
	case "llama":
		tokFile, tokData = TokenizerModel, encodeSPM(voc)
	case "gpt2":
		tj, err := tokenizerJSONOf(voc)
		if err != nil {
			return nil, fmt.Errorf("convert: %s: %w", o.Model, err)
		}
		tokFile = TokenizerJSON
		if tokData, err = marshalJSON(tj); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("convert: %s: tokenizer.ggml.model %q has no Hugging Face export (llama, gpt2 do)", o.Model, voc.model)
	}

	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	files, err := writeShards(ctx, o, tensors, sum)
	if err != nil {
		return nil, err
	}
	sum.Files = append(sum.Files, files...)
	if err := writeJSONFile(filepath.Join(o.Dir, ConfigFile), cfg); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(o.Dir, tokFile), tokData); err != nil {
		return nil, err
	}
	if err := writeJSONFile(filepath.Join(o.Dir, TokenizerConfig), tokenizerConfigOf(voc, a.name)); err != nil {
		return nil, err
	}
	sum.Files = append(sum.Files, ConfigFile, tokFile, TokenizerConfig)
	sum.Tensors = len(tensors)
	return sum, nil
}

// writeShards splits tensors into files of at most o.ShardBytes and writes
// them, with the index when there is more than one.
func writeShards(ctx context.Context, o ExportOptions, tensors []shardTensor, sum *ExportSummary) ([]string, error) {
	limit := o.ShardBytes
	if limit <= 0 {
		limit = DefaultShardBytes
	}
	var groups [][]shardTensor
	var size, total int64
	for _, t := range tensors {
		if len(groups) == 0 || size > 0 && size+t.size() > limit {
			groups = append(groups, nil)
			size = 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], t)
		size += t.size()
		total += t.size()
	}
	var done int
	var bytesDone int64
	weightMap := map[string]string{}
	var files []string
	for i, g := range groups {
		name := SingleWeightsFile
		if len(groups) > 1 {
			name = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(groups))
		}
		for j := range g {
			t := &g[j]
			weightMap[t.name] = name
			data := t.data
			t.data = func(w io.Writer) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := data(w); err != nil {
					return err
				}
				done++
				bytesDone += t.size()
				if o.Progress != nil {
					o.Progress(Progress{Done: done, Total: len(tensors), BytesDone: bytesDone, BytesTotal: total, Name: t.name})
				}
				return nil
			}
		}
		if err := writeShard(filepath.Join(o.Dir, name), g, map[string]string{"format": "pt"}); err != nil {
			return nil, err
		}
		files = append(files, name)
	}
	sum.Bytes = total
	if len(groups) > 1 {
		idx := map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": weightMap}
		if err := writeJSONFile(filepath.Join(o.Dir, IndexFile), idx); err != nil {
			return nil, err
		}
		files = append(files, IndexFile)
	} else {
		// A stale index from an earlier, sharded export would point loaders elsewhere.
		os.Remove(filepath.Join(o.Dir, IndexFile))
	}
	return files, nil
}

// exportDType chooses a tensor's safetensors dtype.
func exportDType(src, want gguf.Type, dims int, canDequantize bool) (safetensors.DType, error) {
	if dims < 2 {
		return safetensors.F32, nil // norms and biases, as in the GGUF
	}
	if want != 0 {
		dt, _ := dtypeOf(want)
		if !src.IsQuantized() || canDequantize {
			return dt, nil
		}
	} else if dt, ok := dtypeOf(src); ok {
		return dt, nil
	} else if canDequantize {
		return safetensors.F32, nil
	}
	if src.IsQuantized() {
		return "", fmt.Errorf("type %s needs dequantizing, which this caller does not provide", src)
	}
	return "", fmt.Errorf("type %s has no safetensors dtype", src)
}

// exportTensor streams GGUF tensor info in Hugging Face's layout as dtype dt.
func exportTensor(w io.Writer, f *gguf.File, info gguf.TensorInfo, tm tensorMap, dt safetensors.DType, dequant func(gguf.Type, []byte, int) ([]float32, error)) error {
	data, err := f.Data(info.Name)
	if err != nil {
		return err
	}
	rows, rowLen := rowShape(tm.shape)
	inRow, err := gguf.RowSize(info.Type, int64(rowLen))
	if err != nil {
		return err
	}
	c := rowCopier{rows: rows, inRow: int(inRow),
		read: func(p []byte, row int) error {
			copy(p, data[int64(row)*inRow:])
			return nil
		}}
	if tm.op == opPermuteQ || tm.op == opPermuteK {
		if err := checkPermutable(rows, tm.heads); err != nil {
			return err
		}
		c.src = func(f int) int { return ggufRow(f, rows, tm.heads) }
	}
	if srcDT, ok := dtypeOf(info.Type); ok && srcDT == dt && tm.op != opPlusOne {
		return c.copyTo(w)
	}
	outSize := int(dt.Size())
	outType, _ := ggufTypeOf(dt)
	var dst []byte
	c.conv = func(in []byte) ([]byte, error) {
		n := len(in) / int(inRow) * rowLen
		var x []float32
		var err error
		if srcDT, ok := dtypeOf(info.Type); ok {
			x, err = safetensors.ToFloat32(srcDT, in)
		} else {
			x, err = dequant(info.Type, in, n)
		}
		if err != nil {
			return nil, err
		}
		if tm.op == opPlusOne {
			for i := range x {
				// Exact for weights in [0.5, 2] (Sterbenz), where norms live.
				x[i]--
			}
		}
		if cap(dst) < n*outSize {
			dst = make([]byte, n*outSize)
		}
		dst = dst[:n*outSize]
		return dst, encodeRow(outType, x, dst)
	}
	return c.copyTo(w)
}

func sameDims(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// hparamsOfGGUF reads the dimensions back from a GGUF model's metadata.
func hparamsOfGGUF(f *gguf.File, a *arch) (*hparams, error) {
	p := a.name + "."
	get := func(k string) (int, error) {
		v, err := f.Meta.Int(p + k)
		if err != nil {
			return 0, err
		}
		if v <= 0 || v > math.MaxInt32 {
			return 0, fmt.Errorf("%s%s is %d", p, k, v)
		}
		return int(v), nil
	}
	h := &hparams{cfg: &config{path: "metadata", m: map[string]any{}}}
	var err error
	if h.embd, err = get("embedding_length"); err != nil {
		return nil, err
	}
	if h.layers, err = get("block_count"); err != nil {
		return nil, err
	}
	if h.heads, err = get("attention.head_count"); err != nil {
		return nil, err
	}
	if h.headsKV, err = get("attention.head_count_kv"); err != nil {
		h.headsKV = h.heads
	}
	if h.ff, err = get("feed_forward_length"); err != nil {
		return nil, err
	}
	h.context, _ = get("context_length")
	if kl, err := get("attention.key_length"); err == nil {
		h.headDim, h.headDimSet = kl, true
	} else {
		h.headDim = h.embd / h.heads
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || len(emb.Dims) != 2 {
		return nil, fmt.Errorf("token_embd.weight is missing or not 2-D")
	}
	h.vocab = int(emb.Dims[1])
	_, hasOutput := f.Tensor("output.weight")
	h.tied = !hasOutput
	return h, nil
}

// exportRopeScaling turns GGUF's rope scaling back into config.json's
// rope_scaling, marking the factor tensors used.
func exportRopeScaling(f *gguf.File, a *arch, h *hparams, used map[string]bool, sum *ExportSummary) (map[string]any, error) {
	p := a.name + ".rope.scaling."
	if _, ok := f.Tensor("rope_freqs.weight"); ok {
		// llama3's parameters are not recoverable from the divisors alone.
		used["rope_freqs.weight"] = true
		sum.Notes = append(sum.Notes, "rope_freqs.weight (Llama 3.1 rope scaling) is not exported: set rope_scaling in config.json by hand")
	}
	long, okL := f.Tensor("rope_factors_long.weight")
	short, okS := f.Tensor("rope_factors_short.weight")
	if okL && okS && long.Type == gguf.TypeF32 && short.Type == gguf.TypeF32 {
		used["rope_factors_long.weight"], used["rope_factors_short.weight"] = true, true
		lf, err := f32Values(f, long.Name)
		if err != nil {
			return nil, err
		}
		sf, err := f32Values(f, short.Name)
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": ropeLongrope, "long_factor": lf, "short_factor": sf}, nil
	}
	if typ, err := f.Meta.String(p + "type"); err == nil && typ == ropeLinear {
		factor, err := f.Meta.Float(p + "factor")
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": ropeLinear, "rope_type": ropeLinear, "factor": factor}, nil
	}
	return nil, nil
}

func f32Values(f *gguf.File, name string) ([]float64, error) {
	b, err := f.Data(name)
	if err != nil {
		return nil, err
	}
	x, err := safetensors.ToFloat32(safetensors.F32, b)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out, nil
}

func torchDType(ts []shardTensor) string {
	for _, t := range ts {
		if len(t.shape) >= 2 {
			switch t.dtype {
			case safetensors.F16:
				return "float16"
			case safetensors.BF16:
				return "bfloat16"
			}
			return "float32"
		}
	}
	return "float32"
}

func marshalJSON(v any) ([]byte, error) {
	var b strings.Builder
	enc := newJSONEncoder(&b)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	return []byte(b.String()), nil
}
