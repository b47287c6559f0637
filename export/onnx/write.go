package onnx

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ecotune/ecotune/gguf"
)

// Format constants of the files Export writes.
const (
	IRVersion = 8  // ONNX IR version (ONNX 1.12 and later read it)
	Opset     = 17 // the default-domain operator set the graph uses
	// MaxInline is protobuf's size limit: a model larger than this keeps its
	// weights in an external data file.
	MaxInline = 1<<31 - 1
	// dataAlign aligns each tensor in the external data file, so a runtime can map it.
	dataAlign = 4096
)

// Options configures Export.
type Options struct {
	Model string // the GGUF model to export
	Out   string // the .onnx file to write, replaced atomically
	// KVCache adds past_key_values.N.key/value inputs and present.N.key/value
	// outputs (Hugging Face Optimum's layout for decoders with a cache).
	KVCache bool
	// ExternalData puts the weights in Out + ".data" even when the model would
	// fit in one file; past MaxInline they always go there.
	ExternalData bool
	// Dequantize converts quantized weights to float32; nil refuses them.
	Dequantize DequantizeFunc
	// Progress, if set, is called after each weight is written.
	Progress func(Progress)
}

// Progress reports how far Export is.
type Progress struct {
	Tensor                string // the GGUF tensor just written
	Done, Total           int    // weights written, weights in the model
	BytesDone, BytesTotal int64  // bytes of weight data written and to write
}

// Summary describes a finished export.
type Summary struct {
	Arch                                   string
	Layers, Heads, KVHeads, HeadDim, Vocab int64
	Tied                                   bool  // the output head reuses the token embedding
	Params                                 int64 // weight values written
	Nodes                                  int   // graph nodes
	Inputs, Outputs                        []string
	DataFile                               string // the external data file, "" when the weights are inline
	Bytes                                  int64  // bytes written, data file included
}

// Export writes the decoder of a GGUF model as an ONNX graph: input_ids,
// attention_mask and position_ids in, logits out (and the KV cache with
// Options.KVCache), computing what llama.cpp computes on the file. Weights
// stream one at a time from the mapped GGUF into the output.
func Export(ctx context.Context, opts Options) (*Summary, error) {
	if opts.Model == "" || opts.Out == "" {
		return nil, errors.New("export/onnx: a model and an output path are needed")
	}
	f, err := gguf.Open(opts.Model)
	if err != nil {
		return nil, fmt.Errorf("export/onnx: %w", err)
	}
	defer f.Close()
	if t, err := f.Meta.String("general.type"); err == nil && t == "adapter" {
		return nil, fmt.Errorf("export/onnx: %s is a LoRA adapter; merge it into its model first (ecotune merge)", opts.Model)
	}
	cfg, err := readConfig(f)
	if err != nil {
		return nil, fmt.Errorf("export/onnx: %s: %w", opts.Model, err)
	}
	d := &decoder{c: cfg, f: f, deq: opts.Dequantize, kv: opts.KVCache}
	d.build()
	if d.err != nil {
		return nil, fmt.Errorf("export/onnx: %s: %w", opts.Model, d.err)
	}
	sum := &Summary{Arch: cfg.arch.name, Layers: cfg.layers, Heads: cfg.heads, KVHeads: cfg.headsKV, HeadDim: cfg.headDim,
		Vocab: cfg.vocab, Tied: cfg.tied, Nodes: len(d.b.g.nodes)}
	var bytesTotal int64
	for _, w := range d.weights {
		if !isFloat(w.info.Type) && opts.Dequantize == nil {
			return nil, fmt.Errorf("export/onnx: %s: tensor %s is %s; quantized weights need a dequantizer (Options.Dequantize)", opts.Model, w.info.Name, w.info.Type)
		}
		sum.Params += w.t.elements()
		bytesTotal += w.t.nbytes()
	}
	for _, v := range d.b.g.inputs {
		sum.Inputs = append(sum.Inputs, v.name)
	}
	for _, v := range d.b.g.outputs {
		sum.Outputs = append(sum.Outputs, v.name)
	}

	m := &model{irVersion: IRVersion, opsets: []opset{{version: Opset}}, producerName: "ecotune",
		docString: "decoder of " + filepath.Base(opts.Model) + " (" + cfg.arch.name + "), exported by ecotune export onnx",
		metadata:  modelMetadata(f, opts),
		graph:     d.b.g}
	m.graph.name = cfg.arch.name

	// Progress is reported as each weight's data goes out.
	var done int
	var bytesDone int64
	for _, w := range d.weights {
		write := w.t.data
		w.t.data = func(out io.Writer) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := write(out); err != nil {
				return err
			}
			done++
			bytesDone += w.t.nbytes()
			if opts.Progress != nil {
				opts.Progress(Progress{Tensor: w.info.Name, Done: done, Total: len(d.weights), BytesDone: bytesDone, BytesTotal: bytesTotal})
			}
			return nil
		}
	}

	if opts.ExternalData || modelSize(m) > MaxInline {
		sum.DataFile = opts.Out + ".data"
		var off int64
		for _, w := range d.weights {
			off = (off + dataAlign - 1) / dataAlign * dataAlign
			w.t.where = &externalRef{location: filepath.Base(sum.DataFile), offset: off, length: w.t.nbytes()}
			off += w.t.nbytes()
		}
		if modelSize(m) > MaxInline {
			return nil, fmt.Errorf("export/onnx: %s: the graph alone is over 2 GB", opts.Model)
		}
		n, err := writeAtomic(sum.DataFile, func(w io.Writer) error { return writeExternal(w, d.weights) })
		if err != nil {
			return nil, fmt.Errorf("export/onnx: %w", err)
		}
		sum.Bytes += n
	}
	n, err := writeAtomic(opts.Out, func(w io.Writer) error { return writeModel(w, m) })
	if err != nil {
		if sum.DataFile != "" {
			os.Remove(sum.DataFile)
		}
		return nil, fmt.Errorf("export/onnx: %w", err)
	}
	sum.Bytes += n
	return sum, nil
}

// modelMetadata is the model's metadata_props: where it comes from and how to feed it.
func modelMetadata(f *gguf.File, opts Options) [][2]string {
	md := [][2]string{{"ecotune.source", filepath.Base(opts.Model)}, {"ecotune.kv_cache", strconv.FormatBool(opts.KVCache)}}
	for _, k := range []string{"general.architecture", "general.name"} {
		if v, err := f.Meta.String(k); err == nil {
			md = append(md, [2]string{k, v})
		}
	}
	for _, k := range []string{"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"} {
		if v, err := f.Meta.Int(k); err == nil {
			md = append(md, [2]string{k, strconv.FormatInt(v, 10)})
		}
	}
	return md
}

// writeAtomic writes a file through a temporary file in the same directory,
// synced and renamed into place, and returns its size.
func writeAtomic(path string, write func(io.Writer) error) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	cw := &countWriter{w: bufio.NewWriterSize(tmp, 1<<20)}
	err = write(cw)
	if err == nil {
		err = cw.w.(*bufio.Writer).Flush()
	}
	if err == nil {
		err = errors.Join(tmp.Chmod(0o644), tmp.Sync())
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return cw.n, nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeData writes a tensor's data and checks its length.
func writeData(w io.Writer, t *tensor) error {
	if t.raw != nil {
		_, err := w.Write(t.raw)
		return err
	}
	cw := &countWriter{w: w}
	if err := t.data(cw); err != nil {
		return err
	}
	if cw.n != t.nbytes() {
		return fmt.Errorf("tensor %s: wrote %d bytes of data, want %d", t.name, cw.n, t.nbytes())
	}
	return nil
}

// writeExternal writes the weights' data at their offsets, zero-padded between.
func writeExternal(w io.Writer, weights []*weight) error {
	var off int64
	for _, wt := range weights {
		if pad := wt.t.where.offset - off; pad > 0 {
			if _, err := w.Write(make([]byte, pad)); err != nil {
				return err
			}
		}
		if err := writeData(w, wt.t); err != nil {
			return err
		}
		off = wt.t.where.offset + wt.t.where.length
	}
	return nil
}

// modelParts encodes everything but the initializers: the model's fields up
// to the graph's key and length, and the graph's fields before and after its
// initializers.
func modelParts(m *model) (head, pre, post []byte) {
	g := &m.graph
	for _, n := range g.nodes {
		pre = appendBytes(pre, 1, n.encode())
	}
	pre = appendString(pre, 2, g.name)
	for _, v := range g.inputs {
		post = appendBytes(post, 11, v.encode())
	}
	for _, v := range g.outputs {
		post = appendBytes(post, 12, v.encode())
	}
	glen := int64(len(pre) + len(post))
	for _, t := range g.initializers {
		glen += fieldLen(5, t.encodedLen())
	}
	head = appendInt(head, 1, m.irVersion)
	for _, o := range m.opsets {
		head = appendBytes(head, 8, o.encode())
	}
	head = appendString(head, 2, m.producerName)
	if m.producerVersion != "" {
		head = appendString(head, 3, m.producerVersion)
	}
	if m.docString != "" {
		head = appendString(head, 6, m.docString)
	}
	for _, kv := range m.metadata {
		head = appendBytes(head, 14, appendString(appendString(nil, 1, kv[0]), 2, kv[1]))
	}
	head = appendVarint(appendTag(head, 7, wireBytes), uint64(glen))
	return head, pre, post
}

// modelSize is the size of the encoded ModelProto.
func modelSize(m *model) int64 {
	head, pre, post := modelParts(m)
	n := int64(len(head) + len(pre) + len(post))
	for _, t := range m.graph.initializers {
		n += fieldLen(5, t.encodedLen())
	}
	return n
}

// writeModel writes the ModelProto, streaming inline tensor data.
func writeModel(w io.Writer, m *model) error {
	head, pre, post := modelParts(m)
	if _, err := w.Write(append(head, pre...)); err != nil {
		return err
	}
	for _, t := range m.graph.initializers {
		h := t.header()
		msg := appendVarint(appendTag(nil, 5, wireBytes), uint64(t.encodedLen()))
		if _, err := w.Write(append(msg, h...)); err != nil {
			return err
		}
		if t.where == nil {
			if err := writeData(w, t); err != nil {
				return err
			}
		}
	}
	_, err := w.Write(post)
	return err
}
