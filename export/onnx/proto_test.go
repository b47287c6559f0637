package onnx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The expected bytes below are worked out by hand from the protobuf encoding
// rules (key = field<<3 | wire type; varints in groups of 7 bits, low first)
// and onnx.proto's field numbers.

func TestVarint(t *testing.T) {
	for v, want := range map[uint64][]byte{
		0:              {0x00},
		1:              {0x01},
		127:            {0x7f},
		128:            {0x80, 0x01},
		300:            {0xac, 0x02},
		1<<31 - 1:      {0xff, 0xff, 0xff, 0xff, 0x07},
		math.MaxUint64: {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		assert.Equal(t, want, appendVarint(nil, v), "%d", v)
		assert.Equal(t, len(want), varintLen(v), "%d", v)
	}
	// A negative int64 takes ten bytes; key 0x18 is field 3, varint.
	assert.Equal(t, []byte{0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, appendInt(nil, 3, -1))
	// Field 2, fixed32: key 0x15; 1.0f is 0x3f800000, little endian.
	assert.Equal(t, []byte{0x15, 0x00, 0x00, 0x80, 0x3f}, appendFloat(nil, 2, 1))
	// Field 20 needs a two-byte key: 20<<3 = 160 = 0xa0 0x01.
	assert.Equal(t, []byte{0xa0, 0x01, 0x07}, appendInt(nil, 20, 7))
}

func TestMessageBytes(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"opset default domain", opset{version: 17}.encode(), []byte{0x10, 0x11}},
		{"opset ai.onnx.ml", opset{domain: "ai.onnx.ml", version: 3}.encode(),
			append(append([]byte{0x0a, 0x0a}, "ai.onnx.ml"...), 0x10, 0x03)},
		{"node", node{name: "n", op: "Add", inputs: []string{"a", "b"}, outputs: []string{"c"}}.encode(),
			[]byte{0x0a, 0x01, 'a', 0x0a, 0x01, 'b', 0x12, 0x01, 'c', 0x1a, 0x01, 'n', 0x22, 0x03, 'A', 'd', 'd'}},
		{"attribute ints", attrIs("perm", 0, 2, 1, 3).encode(),
			[]byte{0x0a, 0x04, 'p', 'e', 'r', 'm', 0x40, 0x00, 0x40, 0x02, 0x40, 0x01, 0x40, 0x03, 0xa0, 0x01, 0x07}},
		{"attribute float", attrF("alpha", 0.5).encode(),
			[]byte{0x0a, 0x05, 'a', 'l', 'p', 'h', 'a', 0x15, 0x00, 0x00, 0x00, 0x3f, 0xa0, 0x01, 0x01}},
		{"attribute int", attrI("axis", -1).encode(),
			[]byte{0x0a, 0x04, 'a', 'x', 'i', 's', 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0xa0, 0x01, 0x02}},
		// ValueInfoProto{name: "x", type: TypeProto{tensor_type: {elem_type: FLOAT, shape: [b, 3]}}}
		{"value info", valueInfo{name: "x", elem: typeFloat, shape: []dim{{param: "b"}, {value: 3}}}.encode(),
			[]byte{0x0a, 0x01, 'x', 0x12, 0x0f, // name, type (15 bytes)
				0x0a, 0x0d, // TypeProto.tensor_type (13 bytes)
				0x08, 0x01, 0x12, 0x09, // elem_type FLOAT, shape (9 bytes)
				0x0a, 0x03, 0x12, 0x01, 'b', // dim_param "b"
				0x0a, 0x02, 0x08, 0x03}}, // dim_value 3
		// TensorProto: dims 2, 3; data_type FLOAT; name "w"; raw_data key 0x4a, 24 bytes follow.
		{"tensor header", (&tensor{name: "w", dims: []int64{2, 3}, typ: typeFloat}).header(),
			[]byte{0x08, 0x02, 0x08, 0x03, 0x10, 0x01, 0x42, 0x01, 'w', 0x4a, 0x18}},
		// external_data (field 13, key 0x6a) entries, then data_location EXTERNAL (field 14, key 0x70).
		{"external tensor header", (&tensor{name: "w", dims: []int64{2}, typ: typeFloat16, where: &externalRef{location: "m.data", offset: 4096, length: 4}}).header(),
			bytes.Join([][]byte{
				{0x08, 0x02, 0x10, 0x0a, 0x42, 0x01, 'w'},
				{0x6a, 0x12, 0x0a, 0x08}, []byte("location"), {0x12, 0x06}, []byte("m.data"),
				{0x6a, 0x0e, 0x0a, 0x06}, []byte("offset"), {0x12, 0x04}, []byte("4096"),
				{0x6a, 0x0b, 0x0a, 0x06}, []byte("length"), {0x12, 0x01}, []byte("4"),
				{0x70, 0x01}}, nil)},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, c.got, c.name)
	}
}

// field is one decoded protobuf field: a varint, fixed32 or bytes value.
type field struct {
	num   int
	wire  int
	u     uint64
	bytes []byte
}

// decode splits a message into its fields. It is written from the wire
// format alone, independently of the encoder.
func decode(b []byte) ([]field, error) {
	var out []field
	uvarint := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errors.New("bad varint")
		}
		b = b[n:]
		return v, nil
	}
	for len(b) > 0 {
		key, err := uvarint()
		if err != nil {
			return nil, err
		}
		f := field{num: int(key >> 3), wire: int(key & 7)}
		switch f.wire {
		case 0:
			if f.u, err = uvarint(); err != nil {
				return nil, err
			}
		case 2:
			n, err := uvarint()
			if err != nil || n > uint64(len(b)) {
				return nil, fmt.Errorf("field %d: bad length", f.num)
			}
			f.bytes, b = b[:n], b[n:]
		case 5:
			if len(b) < 4 {
				return nil, io.ErrUnexpectedEOF
			}
			f.u, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		default:
			return nil, fmt.Errorf("field %d: wire type %d", f.num, f.wire)
		}
		out = append(out, f)
	}
	return out, nil
}

// fields returns the values of field num.
func fields(t *testing.T, fs []field, num int) []field {
	t.Helper()
	var out []field
	for _, f := range fs {
		if f.num == num {
			out = append(out, f)
		}
	}
	return out
}

// TestModelRoundTrip writes a small model with a streamed initializer and
// reads it back with the independent decoder.
func TestModelRoundTrip(t *testing.T) {
	w := []float32{1, -2, 3.5, 0.25, 1e-3, -7}
	raw := make([]byte, 4*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	var b builder
	b.g.name = "tiny"
	b.initializer(&tensor{name: "w", dims: []int64{2, 3}, typ: typeFloat, data: func(out io.Writer) error {
		_, err := out.Write(raw)
		return err
	}})
	b.opNamed("Gemm", "y", in("x", "w", b.floats([]int64{2}, 0.5, -0.5)), attrI("transB", 1))
	b.g.inputs = []valueInfo{{name: "x", elem: typeFloat, shape: []dim{{param: "n"}, {value: 3}}}}
	b.g.outputs = []valueInfo{{name: "y", elem: typeFloat, shape: []dim{{param: "n"}, {value: 2}}}}
	m := &model{irVersion: IRVersion, opsets: []opset{{version: Opset}}, producerName: "ecotune", metadata: [][2]string{{"k", "v"}}, graph: b.g}

	var buf bytes.Buffer
	require.NoError(t, writeModel(&buf, m))
	assert.Equal(t, modelSize(m), int64(buf.Len()))

	top, err := decode(buf.Bytes())
	require.NoError(t, err)
	assert.Equal(t, uint64(8), fields(t, top, 1)[0].u, "ir_version")
	ops, err := decode(fields(t, top, 8)[0].bytes)
	require.NoError(t, err)
	assert.Equal(t, []field{{num: 2, wire: 0, u: 17}}, ops, "opset_import: default domain, version 17")
	assert.Equal(t, "ecotune", string(fields(t, top, 2)[0].bytes))
	md, err := decode(fields(t, top, 14)[0].bytes)
	require.NoError(t, err)
	assert.Equal(t, "k", string(md[0].bytes))
	assert.Equal(t, "v", string(md[1].bytes))

	gf, err := decode(fields(t, top, 7)[0].bytes)
	require.NoError(t, err)
	assert.Equal(t, "tiny", string(fields(t, gf, 2)[0].bytes))
	nodes := fields(t, gf, 1)
	require.Len(t, nodes, 1)
	nf, err := decode(nodes[0].bytes)
	require.NoError(t, err)
	var ins []string
	for _, f := range fields(t, nf, 1) {
		ins = append(ins, string(f.bytes))
	}
	assert.Equal(t, []string{"x", "w", "/const_1"}, ins)
	assert.Equal(t, "y", string(fields(t, nf, 2)[0].bytes))
	assert.Equal(t, "Gemm", string(fields(t, nf, 4)[0].bytes))

	inits := fields(t, gf, 5)
	require.Len(t, inits, 2)
	tf, err := decode(inits[0].bytes)
	require.NoError(t, err)
	assert.Equal(t, []uint64{2, 3}, []uint64{fields(t, tf, 1)[0].u, fields(t, tf, 1)[1].u}, "dims")
	assert.Equal(t, uint64(1), fields(t, tf, 2)[0].u, "FLOAT")
	assert.Equal(t, "w", string(fields(t, tf, 8)[0].bytes))
	assert.Equal(t, raw, fields(t, tf, 9)[0].bytes)
	assert.Len(t, fields(t, gf, 11), 1)
	assert.Len(t, fields(t, gf, 12), 1)
}

// TestShortTensorData: a data function that writes too few bytes is an error
// naming the tensor, not a corrupt file.
func TestShortTensorData(t *testing.T) {
	tt := &tensor{name: "w", dims: []int64{4}, typ: typeFloat, data: func(out io.Writer) error {
		_, err := out.Write(make([]byte, 12))
		return err
	}}
	err := writeData(io.Discard, tt)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tensor w: wrote 12 bytes of data, want 16")
}

// TestExternalThreshold: a model whose weights pass protobuf's 2 GB limit is
// too big inline and small once its weights are external. Nothing is written.
func TestExternalThreshold(t *testing.T) {
	big := &tensor{name: "w", dims: []int64{1 << 29}, typ: typeFloat} // 2 GiB
	m := &model{irVersion: IRVersion, graph: graph{initializers: []*tensor{big}}}
	assert.Greater(t, modelSize(m), int64(MaxInline))
	big.where = &externalRef{location: "m.onnx.data", length: big.nbytes()}
	assert.Less(t, modelSize(m), int64(100))
}
