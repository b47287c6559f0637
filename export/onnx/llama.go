package onnx

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/ecotune/ecotune/gguf"
)

// modelNames and blockNames give each GGUF tensor its Hugging Face
// state-dict name: the initializers are the transformers model's weights
// (nn.Linear's [out, in], q and k rows in Hugging Face's order).
var modelNames = map[string]string{
	"token_embd.weight":  "model.embed_tokens.weight",
	"output_norm.weight": "model.norm.weight",
	"output.weight":      "lm_head.weight",
	"output.bias":        "lm_head.bias",
}

var blockNames = map[string]string{
	"attn_norm.weight":   "input_layernorm.weight",
	"attn_q.weight":      "self_attn.q_proj.weight",
	"attn_q.bias":        "self_attn.q_proj.bias",
	"attn_k.weight":      "self_attn.k_proj.weight",
	"attn_k.bias":        "self_attn.k_proj.bias",
	"attn_v.weight":      "self_attn.v_proj.weight",
	"attn_v.bias":        "self_attn.v_proj.bias",
	"attn_output.weight": "self_attn.o_proj.weight",
	"attn_output.bias":   "self_attn.o_proj.bias",
	"ffn_norm.weight":    "post_attention_layernorm.weight",
	"ffn_gate.weight":    "mlp.gate_proj.weight",
	"ffn_gate.bias":      "mlp.gate_proj.bias",
	"ffn_up.weight":      "mlp.up_proj.weight",
	"ffn_up.bias":        "mlp.up_proj.bias",
	"ffn_down.weight":    "mlp.down_proj.weight",
	"ffn_down.bias":      "mlp.down_proj.bias",
}

// hfName returns the Hugging Face name of a GGUF tensor.
func hfName(name string) string {
	if n, ok := modelNames[name]; ok {
		return n
	}
	if rest, ok := strings.CutPrefix(name, "blk."); ok {
		layer, suffix, _ := strings.Cut(rest, ".")
		if n, ok := blockNames[suffix]; ok {
			return "model.layers." + layer + "." + n
		}
	}
	return name
}

// decoder builds the ONNX graph of a llama-family decoder from a GGUF file.
// The first error sticks in err; later calls do nothing useful.
type decoder struct {
	b       builder
	c       *config
	f       *gguf.File
	deq     DequantizeFunc
	kv      bool // past_key_values inputs and present outputs
	weights []*weight
	values  map[string]string // GGUF tensor → float32 value in the graph
	err     error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

// weight returns the float32 graph value of GGUF tensor name, which must have
// ggml shape ne, adding its initializer on first use.
func (d *decoder) weight(name string, unpermute int64, ne ...int64) string {
	if v, ok := d.values[name]; ok {
		return v
	}
	info, ok := d.f.Tensor(name)
	if !ok {
		d.fail("tensor %s is missing", name)
		return ""
	}
	if !slices.Equal(info.Dims, ne) {
		d.fail("tensor %s has shape %v, want %v", name, info.Dims, ne)
		return ""
	}
	w := newWeight(info, hfName(name))
	w.unpermute = unpermute
	w.t.data = func(out io.Writer) error { return w.write(out, d.f, d.deq) }
	d.weights = append(d.weights, w)
	v := d.b.initializer(w.t)
	if w.t.typ != typeFloat {
		v = d.b.opNamed("Cast", v+"/float", in(v), attrI("to", int64(typeFloat)))
	}
	d.values[name] = v
	return v
}

// optWeight is weight for a tensor the architecture may have: "" when absent.
func (d *decoder) optWeight(name, short string, opts []string, unpermute int64, ne ...int64) string {
	if _, ok := d.f.Tensor(name); !ok || !slices.Contains(opts, short) {
		return ""
	}
	return d.weight(name, unpermute, ne...)
}

// build adds the whole graph: inputs, embedding, blocks, output head.
func (d *decoder) build() {
	c, b := d.c, &d.b
	d.values = map[string]string{}
	tok, ok := d.f.Tensor("token_embd.weight")
	if !ok || len(tok.Dims) != 2 {
		d.fail("tensor token_embd.weight is missing or not a matrix")
		return
	}
	c.vocab = tok.Dims[1]
	E, H, K, D := c.embd, c.heads, c.headsKV, c.headDim

	b.scope = "/model/embed_tokens"
	embed := d.weight("token_embd.weight", 0, E, c.vocab)
	idsShape := b.op("Shape", in("input_ids"))
	x := b.op("Gather", in(embed, "input_ids"))
	x = b.op("Reshape", in(x, b.vec(-1, E))) // tokens × E, batch and sequence flattened

	b.scope = "/model/rotary_emb"
	cos, sin := d.ropeTables()
	b.scope = "/model/attn_mask"
	mask := d.mask(idsShape)
	qShape := b.op("Concat", in(idsShape, b.vec(H, D)), attrI("axis", 0))
	kvShape := b.op("Concat", in(idsShape, b.vec(K, D)), attrI("axis", 0))

	for l := range c.layers {
		x = d.block(l, x, cos, sin, mask, qShape, kvShape)
	}

	b.scope = "/model/norm"
	x = d.rmsNorm(x, d.weight("output_norm.weight", 0, E))
	b.scope = "/lm_head"
	out := embed
	c.tied = true
	if _, ok := d.f.Tensor("output.weight"); ok {
		out, c.tied = d.weight("output.weight", 0, E, c.vocab), false
	}
	logits := d.gemm(x, out, d.optWeight("output.bias", "output.bias", c.arch.optModel, 0, c.vocab))
	b.opNamed("Reshape", "logits", in(logits, b.op("Concat", in(idsShape, b.vec(c.vocab)), attrI("axis", 0))))

	d.inputsOutputs()
	d.checkAllUsed()
}

// block adds transformer block l to the residual stream x.
func (d *decoder) block(l int64, x, cos, sin, mask, qShape, kvShape string) string {
	c, b := d.c, &d.b
	E, H, K, D, F := c.embd, c.heads, c.headsKV, c.headDim, c.ff
	name := func(s string) string { return fmt.Sprintf("blk.%d.%s", l, s) }
	linear := func(x, t string, nIn, nOut, unpermute int64) string {
		w := d.weight(name(t+".weight"), unpermute, nIn, nOut)
		bias := d.optWeight(name(t+".bias"), t+".bias", c.arch.optBlock, unpermute, nOut)
		return d.gemm(x, w, bias)
	}
	// llama's q and k rows are reordered for RoPE on adjacent pairs; putting
	// them back lets one rotate_half RoPE serve both styles, and makes the
	// cached keys those of the Hugging Face model.
	var unpermute int64
	if c.arch.rope == ropeAdjacent {
		unpermute = D
	}
	heads := func(x, shape string) string { // tokens × n·D → [B, n, S, D]
		return b.op("Transpose", in(b.op("Reshape", in(x, shape))), attrIs("perm", 0, 2, 1, 3))
	}

	b.scope = fmt.Sprintf("/model/layers.%d/input_layernorm", l)
	h := d.rmsNorm(x, d.weight(name("attn_norm.weight"), 0, E))
	b.scope = fmt.Sprintf("/model/layers.%d/self_attn", l)
	q := d.rope(heads(linear(h, "attn_q", E, H*D, unpermute), qShape), cos, sin)
	k := d.rope(heads(linear(h, "attn_k", E, K*D, unpermute), kvShape), cos, sin)
	v := heads(linear(h, "attn_v", E, K*D, 0), kvShape)
	if d.kv {
		k = b.opNamed("Concat", fmt.Sprintf("present.%d.key", l), in(fmt.Sprintf("past_key_values.%d.key", l), k), attrI("axis", 2))
		v = b.opNamed("Concat", fmt.Sprintf("present.%d.value", l), in(fmt.Sprintf("past_key_values.%d.value", l), v), attrI("axis", 2))
	}
	if g := H / K; g > 1 { // grouped-query attention: each KV head serves g query heads
		repeat := func(x string) string {
			x = b.op("Expand", in(b.op("Unsqueeze", in(x, b.vec(2))), b.vec(1, 1, g, 1, 1)))
			return b.op("Reshape", in(x, b.vec(0, H, -1, D)))
		}
		k, v = repeat(k), repeat(v)
	}
	scores := b.op("MatMul", in(q, b.op("Transpose", in(k), attrIs("perm", 0, 1, 3, 2))))
	scores = b.op("Mul", in(scores, b.floats(nil, float32(1/math.Sqrt(float64(D))))))
	scores = b.op("Where", in(mask, scores, b.floats(nil, -math.MaxFloat32)))
	probs := b.op("Softmax", in(scores), attrI("axis", -1))
	o := b.op("Transpose", in(b.op("MatMul", in(probs, v))), attrIs("perm", 0, 2, 1, 3))
	o = b.op("Reshape", in(o, b.vec(-1, H*D)))
	x = b.op("Add", in(x, linear(o, "attn_output", H*D, E, 0)))

	b.scope = fmt.Sprintf("/model/layers.%d/post_attention_layernorm", l)
	h = d.rmsNorm(x, d.weight(name("ffn_norm.weight"), 0, E))
	b.scope = fmt.Sprintf("/model/layers.%d/mlp", l)
	gate := linear(h, "ffn_gate", E, F, 0)
	act := b.op("Mul", in(b.op("Mul", in(gate, b.op("Sigmoid", in(gate)))), linear(h, "ffn_up", E, F, 0)))
	return b.op("Add", in(x, linear(act, "ffn_down", F, E, 0)))
}

// gemm is x·wᵀ (+ bias) for x of tokens × in and w of out × in.
func (d *decoder) gemm(x, w, bias string) string {
	ins := in(x, w)
	if bias != "" {
		ins = append(ins, bias)
	}
	return d.b.op("Gemm", ins, attrI("transB", 1))
}

// rmsNorm is ggml_rms_norm times the weight: x / √(mean(x²) + ε) · w.
func (d *decoder) rmsNorm(x, w string) string {
	b := &d.b
	ms := b.op("ReduceMean", in(b.op("Mul", in(x, x))), attrIs("axes", -1), attrI("keepdims", 1))
	r := b.op("Sqrt", in(b.op("Add", in(ms, b.floats(nil, d.c.eps)))))
	return b.op("Mul", in(b.op("Div", in(x, r)), w))
}

// ropeTables computes cos and sin of every position's angles, [B, 1, S, D]:
// θ_i = p · freq_scale · base^(-2i/D) / freq_factor_i, as ggml_rope_ext
// (without YaRN), each angle repeated for the two halves of a head.
func (d *decoder) ropeTables() (cos, sin string) {
	c, b := d.c, &d.b
	half := c.headDim / 2
	factors := make([]float64, half)
	for i := range factors {
		factors[i] = 1
	}
	if slices.Contains(c.arch.optModel, "rope_freqs.weight") {
		if info, ok := d.f.Tensor("rope_freqs.weight"); ok {
			ff, err := d.float32s(info, half)
			if err != nil {
				d.fail("tensor rope_freqs.weight: %w", err)
				return "", ""
			}
			for i, v := range ff {
				factors[i] = float64(v)
			}
			d.values[info.Name] = ""
		}
	}
	inv := make([]float32, half)
	for i := range inv {
		inv[i] = float32(c.ropeScale * math.Pow(c.ropeBase, -2*float64(i)/float64(c.headDim)) / factors[i])
	}
	pos := b.op("Unsqueeze", in(b.op("Cast", in("position_ids"), attrI("to", int64(typeFloat))), b.vec(2)))
	freqs := b.op("Mul", in(pos, b.floats([]int64{half}, inv...)))
	emb := b.op("Concat", in(freqs, freqs), attrI("axis", -1))
	cos, sin = b.op("Cos", in(emb)), b.op("Sin", in(emb))
	if c.ropeAttnFactor != 1 {
		f := b.floats(nil, float32(c.ropeAttnFactor))
		cos, sin = b.op("Mul", in(cos, f)), b.op("Mul", in(sin, f))
	}
	return b.op("Unsqueeze", in(cos, b.vec(1))), b.op("Unsqueeze", in(sin, b.vec(1)))
}

// rope rotates x ([B, n, S, D]) by the tables: x·cos + rotate_half(x)·sin,
// rotate_half(x) = (−x₂, x₁) for the halves x₁, x₂ of each head.
func (d *decoder) rope(x, cos, sin string) string {
	b := &d.b
	half := d.c.headDim / 2
	x1 := b.op("Slice", in(x, b.vec(0), b.vec(half), b.vec(-1)))
	x2 := b.op("Slice", in(x, b.vec(half), b.vec(2*half), b.vec(-1)))
	rot := b.op("Concat", in(b.op("Neg", in(x2)), x1), attrI("axis", -1))
	return b.op("Add", in(b.op("Mul", in(x, cos)), b.op("Mul", in(rot, sin))))
}

// mask is the boolean attention mask [B, 1, S, T]: query i (at position
// past_len + i) sees key j when j ≤ past_len + i and attention_mask[b, j] is 1.
// T is attention_mask's length, past_len = T − S.
func (d *decoder) mask(idsShape string) string {
	b := &d.b
	s := b.op("Gather", in(idsShape, b.ints(nil, 1)))
	t := b.op("Gather", in(b.op("Shape", in("attention_mask")), b.ints(nil, 1)))
	past := b.op("Sub", in(t, s))
	one := b.ints(nil, 1)
	keys := b.op("Unsqueeze", in(b.op("Range", in(b.ints(nil, 0), t, one)), b.vec(0)))
	queries := b.op("Unsqueeze", in(b.op("Range", in(past, t, one)), b.vec(1)))
	causal := b.op("LessOrEqual", in(keys, queries))
	pad := b.op("Unsqueeze", in(b.op("Cast", in("attention_mask"), attrI("to", int64(typeBool))), b.vec(1, 2)))
	return b.op("And", in(causal, pad))
}

// inputsOutputs declares the graph's inputs and outputs in Optimum's layout.
func (d *decoder) inputsOutputs() {
	c, g := d.c, &d.b.g
	batch, seq, total, past := dim{param: "batch_size"}, dim{param: "sequence_length"}, dim{param: "total_sequence_length"}, dim{param: "past_sequence_length"}
	maskLen := seq
	if d.kv {
		maskLen = total
	}
	g.inputs = []valueInfo{
		{name: "input_ids", elem: typeInt64, shape: []dim{batch, seq}},
		{name: "attention_mask", elem: typeInt64, shape: []dim{batch, maskLen}},
		{name: "position_ids", elem: typeInt64, shape: []dim{batch, seq}},
	}
	g.outputs = []valueInfo{{name: "logits", elem: typeFloat, shape: []dim{batch, seq, {value: c.vocab}}}}
	if !d.kv {
		return
	}
	for l := range c.layers {
		for _, kv := range []string{"key", "value"} {
			g.inputs = append(g.inputs, valueInfo{name: fmt.Sprintf("past_key_values.%d.%s", l, kv), elem: typeFloat,
				shape: []dim{batch, {value: c.headsKV}, past, {value: c.headDim}}})
			g.outputs = append(g.outputs, valueInfo{name: fmt.Sprintf("present.%d.%s", l, kv), elem: typeFloat,
				shape: []dim{batch, {value: c.headsKV}, total, {value: c.headDim}}})
		}
	}
}

// checkAllUsed refuses a file with tensors the graph does not use: they mean a
// variant of the architecture (experts, fused QKV, extra norms) this export
// would silently get wrong.
func (d *decoder) checkAllUsed() {
	for _, t := range d.f.Tensors {
		if _, ok := d.values[t.Name]; !ok {
			d.fail("tensor %s is not part of the %s layout this export knows: %w", t.Name, d.c.arch.name, ErrUnsupported)
			return
		}
	}
}

// float32s reads a small F32 tensor of n values.
func (d *decoder) float32s(info gguf.TensorInfo, n int64) ([]float32, error) {
	if info.Type != gguf.TypeF32 || len(info.Dims) != 1 || info.Dims[0] != n {
		return nil, fmt.Errorf("want %d F32 values, have %s %v", n, info.Type, info.Dims)
	}
	data, err := d.f.Data(info.Name)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out, nil
}
