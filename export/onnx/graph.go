package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
)

// builder assembles a graph node by node. Values are named by the node that
// makes them (scope/Op_n), so the graph reads like the model's structure in a
// viewer such as Netron.
type builder struct {
	g      graph
	scope  string
	n      int
	consts map[string]string // constants by type, dims and values, so each is stored once
}

// op adds a node with one output and returns the output's name.
func (b *builder) op(op string, inputs []string, attrs ...attribute) string {
	return b.opNamed(op, "", inputs, attrs...)
}

// opNamed adds a node whose output gets the given name ("" for a generated one).
func (b *builder) opNamed(op, out string, inputs []string, attrs ...attribute) string {
	b.n++
	name := fmt.Sprintf("%s/%s_%d", b.scope, op, b.n)
	if out == "" {
		out = name + "_output"
	}
	b.g.nodes = append(b.g.nodes, node{name: name, op: op, inputs: inputs, outputs: []string{out}, attrs: attrs})
	return out
}

// initializer adds a tensor to the graph's initializers and returns its name.
func (b *builder) initializer(t *tensor) string {
	b.g.initializers = append(b.g.initializers, t)
	return t.name
}

// ints adds a constant int64 tensor of the given dims (nil for a scalar).
func (b *builder) ints(dims []int64, vals ...int64) string {
	raw := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return b.constant(dims, typeInt64, raw)
}

// vec adds a constant 1-D int64 tensor.
func (b *builder) vec(vals ...int64) string { return b.ints([]int64{int64(len(vals))}, vals...) }

// floats adds a constant float tensor of the given dims (nil for a scalar).
func (b *builder) floats(dims []int64, vals ...float32) string {
	raw := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return b.constant(dims, typeFloat, raw)
}

// constant adds a constant tensor, or returns the name of an equal one.
func (b *builder) constant(dims []int64, typ dataType, raw []byte) string {
	key := fmt.Sprint(typ, dims, raw)
	if name, ok := b.consts[key]; ok {
		return name
	}
	if b.consts == nil {
		b.consts = map[string]string{}
	}
	b.n++
	name := fmt.Sprintf("/const_%d", b.n)
	b.consts[key] = name
	return b.initializer(&tensor{name: name, dims: dims, typ: typ, raw: raw})
}

func attrI(name string, v int64) attribute { return attribute{name: name, typ: attrInt, i: v} }

func attrF(name string, v float32) attribute { return attribute{name: name, typ: attrFloat, f: v} }

func attrIs(name string, vs ...int64) attribute {
	return attribute{name: name, typ: attrInts, ints: vs}
}

// in lists a node's inputs.
func in(names ...string) []string { return names }
