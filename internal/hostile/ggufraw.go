package hostile

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// layout is where the sections of a well-formed GGUF file begin and end, as offsets
// into its bytes: what the truncation and field-overwrite entries aim at.
type layout struct {
	kvEnds      []int // after each metadata key-value pair
	keyAt       map[string]int
	valueAt     map[string]int // the value's type tag
	infoEnds    []int          // after each tensor info
	infoAt      map[string]int // the tensor info's name length
	tensorOrder []string
	dataOffset  int
	dataEnd     int
}

// ggufScalarSize is the encoded size of each fixed-size metadata type; 0 for string
// (8) and array (9).
var ggufScalarSize = [13]int{1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8}

// walk finds the layout of b, which must be a valid GGUF v2/v3 file: the corpus is
// derived from a known-good model, so any surprise here is a bug in the caller.
func walk(b []byte) (*layout, error) {
	l := &layout{keyAt: map[string]int{}, valueAt: map[string]int{}, infoAt: map[string]int{}}
	pos := 0
	need := func(n int) error {
		if n < 0 || pos+n > len(b) {
			return errors.New("truncated")
		}
		return nil
	}
	u32 := func() (uint32, error) {
		if err := need(4); err != nil {
			return 0, err
		}
		v := binary.LittleEndian.Uint32(b[pos:])
		pos += 4
		return v, nil
	}
	u64 := func() (uint64, error) {
		if err := need(8); err != nil {
			return 0, err
		}
		v := binary.LittleEndian.Uint64(b[pos:])
		pos += 8
		return v, nil
	}
	str := func() (string, error) {
		n, err := u64()
		if err != nil {
			return "", err
		}
		if err := need(int(n)); err != nil {
			return "", err
		}
		s := string(b[pos : pos+int(n)])
		pos += int(n)
		return s, nil
	}
	var value func(typ uint32) error
	value = func(typ uint32) error {
		switch {
		case typ == 8:
			_, err := str()
			return err
		case typ == 9:
			elem, err := u32()
			if err != nil {
				return err
			}
			n, err := u64()
			if err != nil {
				return err
			}
			for range n {
				if err := value(elem); err != nil {
					return err
				}
			}
			return nil
		case typ < uint32(len(ggufScalarSize)):
			if err := need(ggufScalarSize[typ]); err != nil {
				return err
			}
			pos += ggufScalarSize[typ]
			return nil
		}
		return fmt.Errorf("value type %d", typ)
	}
	if string(b[:4]) != "GGUF" {
		return nil, errors.New("not a GGUF file")
	}
	pos = 8
	nTensors, _ := u64()
	nKV, err := u64()
	if err != nil {
		return nil, err
	}
	alignment := uint64(32)
	for range nKV {
		at := pos
		key, err := str()
		if err != nil {
			return nil, err
		}
		l.keyAt[key] = at
		l.valueAt[key] = pos
		typ, err := u32()
		if err != nil {
			return nil, err
		}
		if key == "general.alignment" {
			alignment = uint64(binary.LittleEndian.Uint32(b[pos:]))
		}
		if err := value(typ); err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		l.kvEnds = append(l.kvEnds, pos)
	}
	for range nTensors {
		at := pos
		name, err := str()
		if err != nil {
			return nil, err
		}
		l.infoAt[name] = at
		l.tensorOrder = append(l.tensorOrder, name)
		nDims, err := u32()
		if err != nil {
			return nil, err
		}
		pos += 8*int(nDims) + 4 + 8
		if err := need(0); err != nil {
			return nil, err
		}
		l.infoEnds = append(l.infoEnds, pos)
	}
	l.dataOffset = int((uint64(pos) + alignment - 1) / alignment * alignment)
	l.dataEnd = len(b)
	return l, nil
}

// infoFields returns the offsets of a tensor info's dimension count, its dimensions,
// type and data offset fields.
func (l *layout) infoFields(b []byte, name string) (nDimsAt int, dimsAt []int, typeAt, offsetAt int) {
	at := l.infoAt[name]
	nDimsAt = at + 8 + len(name)
	n := int(binary.LittleEndian.Uint32(b[nDimsAt:]))
	for i := range n {
		dimsAt = append(dimsAt, nDimsAt+4+8*i)
	}
	typeAt = nDimsAt + 4 + 8*n
	return nDimsAt, dimsAt, typeAt, typeAt + 4
}

// patched returns a copy of b with v written little-endian at off.
func patched[T uint32 | uint64](b []byte, off int, v T) []byte {
	out := append([]byte(nil), b...)
	switch x := any(v).(type) {
	case uint32:
		binary.LittleEndian.PutUint32(out[off:], x)
	case uint64:
		binary.LittleEndian.PutUint64(out[off:], x)
	}
	return out
}

// rawGGUF encodes GGUF files field by field, for inputs no valid writer produces
// (zero dimensions, absurd counts).
type rawGGUF struct{ b []byte }

func newRawGGUF(nTensors, nKV uint64) *rawGGUF {
	r := &rawGGUF{b: []byte("GGUF")}
	return r.u32(3).u64(nTensors).u64(nKV)
}

func (r *rawGGUF) u32(v uint32) *rawGGUF { r.b = binary.LittleEndian.AppendUint32(r.b, v); return r }
func (r *rawGGUF) u64(v uint64) *rawGGUF { r.b = binary.LittleEndian.AppendUint64(r.b, v); return r }
func (r *rawGGUF) str(s string) *rawGGUF { r.u64(uint64(len(s))); r.b = append(r.b, s...); return r }

// kvStr and kvF32 append a metadata pair.
func (r *rawGGUF) kvStr(k, v string) *rawGGUF { return r.str(k).u32(8).str(v) }
func (r *rawGGUF) kvF32(k string, bits uint32) *rawGGUF {
	return r.str(k).u32(6).u32(bits)
}

// tensor appends a tensor info of type F32.
func (r *rawGGUF) tensor(name string, offset uint64, dims ...uint64) *rawGGUF {
	r.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		r.u64(d)
	}
	return r.u32(0).u64(offset)
}

// data pads to the default alignment and appends n zero bytes.
func (r *rawGGUF) data(n int) []byte {
	for len(r.b)%32 != 0 {
		r.b = append(r.b, 0)
	}
	return append(r.b, make([]byte, n)...)
}
