package gguf

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostileCase is a malformed input and a fragment its error must contain.
type hostileCase struct {
	name string
	in   func() []byte
	want string
}

// deepArray returns a key whose value nests arrays depth deep.
func deepArray(depth int) []byte {
	r := newRaw(3, 0, 1).str("deep").u32(uint32(ValueArray))
	for range depth - 1 {
		r.u32(uint32(ValueArray)).u64(1)
	}
	return r.u32(uint32(ValueUint8)).u64(0).b
}

func hostileCases() []hostileCase {
	f32 := func(r *raw) []byte { return r.data(64) }
	return []hostileCase{
		{"empty", func() []byte { return nil }, "header: magic"},
		{"bad magic", func() []byte { return []byte("GGML\x03\x00\x00\x00") }, `bad magic "GGML"`},
		{"version 0", func() []byte { return newRaw(0, 0, 0).b }, "unsupported version 0"},
		{"version 1", func() []byte { return newRaw(1, 0, 0).b }, "v1 is not supported"},
		{"version 4", func() []byte { return newRaw(4, 0, 0).b }, "unsupported version 4"},
		{"big endian", func() []byte { return newRaw(3<<24, 0, 0).b }, "big-endian"},
		{"truncated counts", func() []byte { return newRaw(3, 0, 0).b[:12] }, "tensor count"},
		{"huge tensor count", func() []byte { return newRaw(3, 1<<62, 0).b }, "tensor count: count 4611686018427387904"},
		{"max tensor count", func() []byte { return newRaw(3, math.MaxUint64, 0).b }, "tensor count"},
		{"huge kv count", func() []byte { return newRaw(3, 0, 1<<40).b }, "metadata count"},
		{"huge key length", func() []byte { return newRaw(3, 0, 1).u64(1 << 60).zeros(16) }, "key 0 of 1: string length 1152921504606846976 exceeds"},
		{"empty key", func() []byte { return newRaw(3, 0, 1).str("").u32(0).u8(1).zeros(16) }, "empty key"},
		{"huge string value", func() []byte {
			return newRaw(3, 0, 1).str("general.name").u32(uint32(ValueString)).u64(math.MaxUint64).b
		}, `key "general.name": string length 18446744073709551615`},
		{"unknown value type", func() []byte { return newRaw(3, 0, 1).str("k").u32(13).u8(0).b }, `key "k": unknown value type 13`},
		{"array of unknown type", func() []byte {
			return newRaw(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(99).u64(0).b
		}, `key "k": array of unknown value type 99`},
		{"huge u32 array", func() []byte {
			return newRaw(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueUint32)).u64(1 << 61).b
		}, `key "k": array of u32: count 2305843009213693952`},
		{"huge string array", func() []byte {
			return newRaw(3, 0, 1).str("tokenizer.ggml.tokens").u32(uint32(ValueArray)).u32(uint32(ValueString)).u64(1 << 32).u64(1).b
		}, `key "tokenizer.ggml.tokens": array of str: count 4294967296`},
		{"huge nested array", func() []byte {
			return newRaw(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueArray)).u64(1 << 50).b
		}, "array of arr: count"},
		{"string array element past end", func() []byte {
			return newRaw(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueString)).u64(2).u64(1).u8('a').u64(100).b
		}, `key "k": element 1: string length 100`},
		{"nesting too deep", func() []byte { return deepArray(MaxArrayDepth + 1) }, "nested deeper than 8"},
		{"bool byte 2", func() []byte { return newRaw(3, 0, 1).str("b").u32(uint32(ValueBool)).u8(2).b }, `key "b": bool byte is 2`},
		{"duplicate key", func() []byte { return newRaw(3, 0, 2).kvU32("a", 1).kvU32("a", 2).b }, `key "a": duplicate key`},
		{"alignment wrong type", func() []byte {
			return newRaw(3, 0, 1).str(KeyAlignment).u32(uint32(ValueUint64)).u64(32).b
		}, `key "general.alignment": is u64, want u32`},
		{"alignment zero", func() []byte { return newRaw(3, 0, 1).kvU32(KeyAlignment, 0).b }, "alignment 0 is not a power of two"},
		{"alignment not power of two", func() []byte { return newRaw(3, 0, 1).kvU32(KeyAlignment, 48).b }, "alignment 48 is not a power of two"},
		{"huge tensor name", func() []byte { return newRaw(3, 1, 0).u64(1 << 62).zeros(32) }, "tensor 0 of 1: name: string length"},
		{"tensor name too long", func() []byte {
			return f32(newRaw(3, 1, 0).tensor(strings.Repeat("x", 64), TypeF32, 0, 4))
		}, "longer than ggml's limit of 63"},
		{"too many dims", func() []byte { return newRaw(3, 1, 0).tensor("t", TypeF32, 0, 1, 1, 1, 1, 1).b }, `tensor "t": 5 dimensions, more than 4`},
		{"huge n_dims", func() []byte { return newRaw(3, 1, 0).str("t").u32(math.MaxUint32).zeros(32) }, "4294967295 dimensions"},
		{"zero dim", func() []byte { return f32(newRaw(3, 1, 0).tensor("t", TypeF32, 0, 4, 0)) }, `tensor "t": dimension 1 is 0`},
		{"negative dim", func() []byte { return f32(newRaw(3, 1, 0).tensor("t", TypeF32, 0, 1<<63)) }, "dimension 0 is 9223372036854775808, too large"},
		{"overflowing dims", func() []byte {
			return f32(newRaw(3, 1, 0).tensor("t", TypeF32, 0, 1<<32, 1<<32))
		}, "element count overflows int64"},
		{"overflowing bytes", func() []byte {
			return f32(newRaw(3, 1, 0).tensor("t", TypeF64, 0, 1<<31, 1<<31))
		}, "byte size overflows int64"},
		{"unknown tensor type", func() []byte { return f32(newRaw(3, 1, 0).tensor("t", 99, 0, 4)) }, `tensor "t": unknown tensor type 99`},
		{"removed tensor type", func() []byte { return f32(newRaw(3, 1, 0).tensor("t", 4, 0, 32)) }, "unknown tensor type 4"},
		{"row not a block multiple", func() []byte {
			return newRaw(3, 1, 0).tensor("t", TypeQ4_0, 0, 16).data(18)
		}, "row width 16 is not a multiple of the q4_0 block size 32"},
		{"duplicate tensor", func() []byte {
			return newRaw(3, 2, 0).tensor("t", TypeF32, 0, 4).tensor("t", TypeF32, 32, 4).data(64)
		}, `tensor "t": duplicate tensor name`},
		{"misaligned offset", func() []byte { return f32(newRaw(3, 1, 0).tensor("t", TypeF32, 8, 4)) }, "offset 8 is not a multiple of the alignment 32"},
		{"offset beyond file", func() []byte {
			return f32(newRaw(3, 1, 0).tensor("blk.0.attn_q.weight", TypeF32, 1<<20, 4))
		}, `tensor "blk.0.attn_q.weight": offset 1048576 (file offset 1048672) beyond end of file (size 160)`},
		{"offset beyond int64", func() []byte { return f32(newRaw(3, 1, 0).tensor("t", TypeF32, math.MaxUint64, 4)) }, "beyond end of file"},
		{"data past end", func() []byte { return newRaw(3, 1, 0).tensor("t", TypeF32, 0, 100).data(64) }, "400 bytes of data at offset 0 (file offset 64) run past end of file"},
		{"overlap", func() []byte {
			return newRaw(3, 2, 0).tensor("a", TypeF32, 0, 16).tensor("b", TypeF32, 32, 4).data(128)
		}, `tensor "b": data at offset 32 overlaps tensor "a" (offset 0, 64 bytes)`},
		{"overlap out of order", func() []byte {
			return newRaw(3, 2, 0).tensor("a", TypeF32, 32, 4).tensor("b", TypeF32, 0, 16).data(128)
		}, `tensor "a": data at offset 32 overlaps tensor "b"`},
		{"data section beyond end", func() []byte { return newRaw(3, 1, 0).tensor("t", TypeF32, 0, 1).b }, "data section: starts at offset 64"},
	}
}

func TestHostileInputs(t *testing.T) {
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) {
			in := c.in()
			f, err := ParseBytes(in)
			require.Error(t, err, "parsed as %+v", f)
			assert.ErrorIs(t, err, ErrMalformed)
			assert.ErrorContains(t, err, c.want)
			assert.True(t, strings.HasPrefix(err.Error(), "gguf: "), err.Error())

			// The same input through an io.ReaderAt fails the same way.
			_, err2 := Parse(bytes.NewReader(in), int64(len(in)))
			assert.Equal(t, err.Error(), err2.Error())
		})
	}
}

func TestNestingAtLimitIsAccepted(t *testing.T) {
	f, err := ParseBytes(deepArray(MaxArrayDepth))
	require.NoError(t, err)
	v, ok := f.Meta.Get("deep")
	require.True(t, ok)
	assert.Equal(t, ValueArray, v.ElemType())
}

// TestTruncatedEveryPrefix cuts a valid file at every length: each prefix that
// loses tensor data must fail cleanly; only cuts in the last tensor's trailing
// padding parse.
func TestTruncatedEveryPrefix(t *testing.T) {
	b := sampleBytes(t)
	full, err := ParseBytes(b)
	require.NoError(t, err)
	dataEnd := int64(0)
	for _, ti := range full.Tensors {
		size, err := ti.Size()
		require.NoError(t, err)
		dataEnd = max(dataEnd, full.DataOffset+ti.Offset+size)
	}
	for n := range len(b) {
		f, err := ParseBytes(b[:n])
		if int64(n) < dataEnd {
			if assert.Error(t, err, "prefix of %d bytes parsed", n) {
				assert.ErrorIs(t, err, ErrMalformed)
			}
			continue
		}
		if assert.NoError(t, err, "prefix of %d bytes (data ends at %d)", n, dataEnd) {
			assert.Len(t, f.Tensors, len(full.Tensors))
		}
	}
}

// totalAlloc returns the bytes allocated by the process so far.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// allocBound is the most a parse of n input bytes may allocate: a small
// multiple of n plus a constant. The multiple covers the Go representation of
// what was read (slice and string headers, map entries, interface boxes).
func allocBound(n int) uint64 { return 32*uint64(n) + 256<<10 }

// TestParseAllocationBounded checks allocations on the hostile inputs and the
// sample: none allocates beyond allocBound, however large the counts it claims.
func TestParseAllocationBounded(t *testing.T) {
	inputs := [][]byte{sampleBytes(t)}
	for _, c := range hostileCases() {
		inputs = append(inputs, c.in())
	}
	// Many tiny keys and many empty nested arrays: the worst ratios of Go
	// memory to file bytes.
	keys := newRaw(3, 0, 2000)
	for i := range 2000 {
		keys.str(string(rune('a'+i%26)) + strings.Repeat("k", i/26)).u32(uint32(ValueUint8)).u8(1)
	}
	inputs = append(inputs, keys.b)
	nested := newRaw(3, 0, 1).str("n").u32(uint32(ValueArray)).u32(uint32(ValueArray)).u64(5000)
	for range 5000 {
		nested.u32(uint32(ValueUint8)).u64(0)
	}
	inputs = append(inputs, nested.b)

	for i, in := range inputs {
		before := totalAlloc()
		_, err := ParseBytes(in)
		got := totalAlloc() - before
		assert.LessOrEqual(t, got, allocBound(len(in)), "input %d (%d bytes, err %v)", i, len(in), err)
	}
}

func TestFormatErrorShape(t *testing.T) {
	err := (&FormatError{File: "model.gguf", Context: `tensor "x"`, Err: errors.New("bad")}).Error()
	assert.Equal(t, `gguf: model.gguf: tensor "x": bad`, err)
	long := strings.Repeat("k", 500)
	_, perr := ParseBytes(newRaw(3, 0, 2).kvU32(long, 1).kvU32(long, 1).b)
	require.Error(t, perr)
	assert.Less(t, len(perr.Error()), 200, "hostile names are shortened in errors")
	assert.ErrorContains(t, perr, "(500 bytes)")
}
