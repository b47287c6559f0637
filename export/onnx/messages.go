package onnx

import (
	"io"
	"strconv"
)

// The ONNX messages the exporter writes, with the field numbers of onnx.proto
// (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
// ValueInfoProto, TypeProto, TensorShapeProto, OperatorSetIdProto,
// StringStringEntryProto). Only the fields used here are modelled.

// dataType is TensorProto.DataType.
type dataType int32

const (
	typeFloat   dataType = 1
	typeInt64   dataType = 7
	typeBool    dataType = 9
	typeFloat16 dataType = 10
)

// size is the byte size of one element.
func (t dataType) size() int64 {
	switch t {
	case typeFloat:
		return 4
	case typeInt64:
		return 8
	case typeBool:
		return 1
	case typeFloat16:
		return 2
	}
	panic("onnx: no size for data type")
}

// attrType is AttributeProto.AttributeType.
type attrType int32

const (
	attrFloat attrType = 1
	attrInt   attrType = 2
	attrInts  attrType = 7
)

// model is a ModelProto.
type model struct {
	irVersion       int64
	opsets          []opset
	producerName    string
	producerVersion string
	docString       string
	metadata        [][2]string // metadata_props, key and value
	graph           graph
}

// opset is an OperatorSetIdProto; domain "" is the default ONNX domain.
type opset struct {
	domain  string
	version int64
}

// graph is a GraphProto.
type graph struct {
	name         string
	nodes        []node
	initializers []*tensor
	inputs       []valueInfo
	outputs      []valueInfo
}

// node is a NodeProto.
type node struct {
	name    string
	op      string
	inputs  []string
	outputs []string
	attrs   []attribute
}

// attribute is an AttributeProto of type FLOAT, INT or INTS.
type attribute struct {
	name string
	typ  attrType
	f    float32
	i    int64
	ints []int64
}

// tensor is a TensorProto whose data is raw little-endian bytes: held in raw,
// or streamed by data when the file is written. External tensors name a
// location in the data file instead of carrying raw_data.
type tensor struct {
	name  string
	dims  []int64
	typ   dataType
	raw   []byte
	data  func(w io.Writer) error // writes exactly nbytes() bytes; used when raw is nil
	where *externalRef
}

// externalRef places a tensor's data in the external data file.
type externalRef struct {
	location       string // relative to the model file's directory
	offset, length int64
}

// valueInfo is a ValueInfoProto for a tensor: element type and shape, each
// dimension a number or, when param is set, a symbolic name.
type valueInfo struct {
	name  string
	elem  dataType
	shape []dim
}

// dim is a TensorShapeProto.Dimension.
type dim struct {
	value int64
	param string
}

// elements is the product of the tensor's dims.
func (t *tensor) elements() int64 {
	n := int64(1)
	for _, d := range t.dims {
		n *= d
	}
	return n
}

// nbytes is the size of the tensor's data.
func (t *tensor) nbytes() int64 { return t.elements() * t.typ.size() }

func (o opset) encode() []byte {
	var b []byte
	if o.domain != "" {
		b = appendString(b, 1, o.domain)
	}
	return appendInt(b, 2, o.version)
}

func (a attribute) encode() []byte {
	b := appendString(nil, 1, a.name)
	switch a.typ {
	case attrFloat:
		b = appendFloat(b, 2, a.f)
	case attrInt:
		b = appendInt(b, 3, a.i)
	case attrInts:
		for _, v := range a.ints {
			b = appendInt(b, 8, v)
		}
	}
	return appendInt(b, 20, int64(a.typ))
}

func (n node) encode() []byte {
	var b []byte
	for _, s := range n.inputs {
		b = appendString(b, 1, s)
	}
	for _, s := range n.outputs {
		b = appendString(b, 2, s)
	}
	if n.name != "" {
		b = appendString(b, 3, n.name)
	}
	b = appendString(b, 4, n.op)
	for _, a := range n.attrs {
		b = appendBytes(b, 5, a.encode())
	}
	return b
}

func (v valueInfo) encode() []byte {
	var shape []byte
	for _, d := range v.shape {
		var db []byte
		if d.param != "" {
			db = appendString(db, 2, d.param)
		} else {
			db = appendInt(db, 1, d.value)
		}
		shape = appendBytes(shape, 1, db)
	}
	tt := appendInt(nil, 1, int64(v.elem))
	tt = appendBytes(tt, 2, shape)
	typ := appendBytes(nil, 1, tt) // TypeProto.tensor_type
	b := appendString(nil, 1, v.name)
	return appendBytes(b, 2, typ)
}

// header encodes every field of the tensor but raw_data, followed, for a
// tensor whose data is inline, by raw_data's tag and length: the data bytes
// come next.
func (t *tensor) header() []byte {
	var b []byte
	for _, d := range t.dims {
		b = appendInt(b, 1, d)
	}
	b = appendInt(b, 2, int64(t.typ))
	b = appendString(b, 8, t.name)
	if t.where != nil {
		for _, kv := range [][2]string{
			{"location", t.where.location},
			{"offset", strconv.FormatInt(t.where.offset, 10)},
			{"length", strconv.FormatInt(t.where.length, 10)},
		} {
			b = appendBytes(b, 13, appendString(appendString(nil, 1, kv[0]), 2, kv[1]))
		}
		return appendInt(b, 14, 1) // data_location EXTERNAL
	}
	return appendLen(b, 9, int(t.nbytes()))
}

// encodedLen is the size of the whole TensorProto, data included when inline.
func (t *tensor) encodedLen() int64 {
	n := int64(len(t.header()))
	if t.where == nil {
		n += t.nbytes()
	}
	return n
}
