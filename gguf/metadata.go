package gguf

import (
	"fmt"
	"iter"
	"math"
	"slices"
)

// kv is one metadata entry.
type kv struct {
	Key   string
	Value Value
}

// Metadata is the ordered key-value section of a GGUF file. Order is kept
// exactly as read or set, because it is part of the file's bytes. The zero
// value is empty and ready to use; it is not safe for concurrent writes.
type Metadata struct {
	kvs   []kv
	index map[string]int // key -> position in kvs
}

// Len returns the number of entries.
func (m *Metadata) Len() int { return len(m.kvs) }

// Keys returns the keys in file order.
func (m *Metadata) Keys() []string {
	keys := make([]string, len(m.kvs))
	for i, kv := range m.kvs {
		keys[i] = kv.Key
	}
	return keys
}

// All iterates over the entries in file order.
func (m *Metadata) All() iter.Seq2[string, Value] {
	return func(yield func(string, Value) bool) {
		for _, kv := range m.kvs {
			if !yield(kv.Key, kv.Value) {
				return
			}
		}
	}
}

// Get returns the value of key.
func (m *Metadata) Get(key string) (Value, bool) {
	i, ok := m.index[key]
	if !ok {
		return Value{}, false
	}
	return m.kvs[i].Value, true
}

// Has reports whether key is present.
func (m *Metadata) Has(key string) bool {
	_, ok := m.index[key]
	return ok
}

// Set replaces the value of key in place, or appends key at the end if absent.
// Values are checked when the file is written.
func (m *Metadata) Set(key string, v Value) {
	if i, ok := m.index[key]; ok {
		m.kvs[i].Value = v
		return
	}
	if m.index == nil {
		m.index = make(map[string]int)
	}
	m.index[key] = len(m.kvs)
	m.kvs = append(m.kvs, kv{Key: key, Value: v})
}

// Delete removes key, keeping the order of the others, and reports whether it was present.
func (m *Metadata) Delete(key string) bool {
	i, ok := m.index[key]
	if !ok {
		return false
	}
	m.kvs = slices.Delete(m.kvs, i, i+1)
	delete(m.index, key)
	for j := i; j < len(m.kvs); j++ {
		m.index[m.kvs[j].Key] = j
	}
	return true
}

// Clone returns a copy that can be changed without affecting m. Values are
// shared, which is safe because nothing in this package mutates a Value.
func (m *Metadata) Clone() *Metadata {
	out := &Metadata{kvs: slices.Clone(m.kvs), index: make(map[string]int, len(m.kvs))}
	for i, kv := range out.kvs {
		out.index[kv.Key] = i
	}
	return out
}

// add appends a key the caller knows is new (the reader checks duplicates itself).
func (m *Metadata) add(key string, v Value) {
	m.index[key] = len(m.kvs)
	m.kvs = append(m.kvs, kv{Key: key, Value: v})
}

// lookup returns the value of key or an error wrapping ErrKeyNotFound.
func (m *Metadata) lookup(key string) (Value, error) {
	v, ok := m.Get(key)
	if !ok {
		return Value{}, fmt.Errorf("gguf: key %q: %w", key, ErrKeyNotFound)
	}
	return v, nil
}

func wrongType(key string, v Value, want string) error {
	return fmt.Errorf("gguf: key %q: is %s, want %s: %w", key, v.typeName(), want, ErrWrongType)
}

// Get returns the scalar of type T stored under key. It fails, naming the key,
// if the key is missing (ErrKeyNotFound) or holds another type (ErrWrongType).
func Get[T Scalar](m *Metadata, key string) (T, error) {
	var zero T
	v, err := m.lookup(key)
	if err != nil {
		return zero, err
	}
	x, ok := As[T](v)
	if !ok {
		return zero, wrongType(key, v, scalarType[T]().String())
	}
	return x, nil
}

// GetArray returns the array of T stored under key (shared: do not modify). It
// fails like Get.
func GetArray[T Scalar](m *Metadata, key string) ([]T, error) {
	v, err := m.lookup(key)
	if err != nil {
		return nil, err
	}
	x, ok := ArrayAs[T](v)
	if !ok {
		return nil, wrongType(key, v, "arr["+scalarType[T]().String()+"]")
	}
	return x, nil
}

// String returns the string stored under key.
func (m *Metadata) String(key string) (string, error) { return Get[string](m, key) }

// Bool returns the bool stored under key.
func (m *Metadata) Bool(key string) (bool, error) { return Get[bool](m, key) }

// Uint32 returns the u32 stored under key.
func (m *Metadata) Uint32(key string) (uint32, error) { return Get[uint32](m, key) }

// Int32 returns the i32 stored under key.
func (m *Metadata) Int32(key string) (int32, error) { return Get[int32](m, key) }

// Uint64 returns the u64 stored under key.
func (m *Metadata) Uint64(key string) (uint64, error) { return Get[uint64](m, key) }

// Int64 returns the i64 stored under key.
func (m *Metadata) Int64(key string) (int64, error) { return Get[int64](m, key) }

// Float32 returns the f32 stored under key.
func (m *Metadata) Float32(key string) (float32, error) { return Get[float32](m, key) }

// Float64 returns the f64 stored under key.
func (m *Metadata) Float64(key string) (float64, error) { return Get[float64](m, key) }

// Int returns the integer stored under key whatever its integer type, because
// writers disagree on widths (block_count is u32 in one file and i32 or u64 in
// another). It fails if the value is not an integer or does not fit in int64.
func (m *Metadata) Int(key string) (int64, error) {
	v, err := m.lookup(key)
	if err != nil {
		return 0, err
	}
	n, ok := toInt64(v.x)
	if !ok {
		return 0, wrongType(key, v, "an integer that fits in int64")
	}
	return n, nil
}

// Float returns the f32 or f64 stored under key as a float64.
func (m *Metadata) Float(key string) (float64, error) {
	v, err := m.lookup(key)
	if err != nil {
		return 0, err
	}
	switch x := v.x.(type) {
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	}
	return 0, wrongType(key, v, "f32 or f64")
}

// Strings returns the string array stored under key (shared: do not modify).
func (m *Metadata) Strings(key string) ([]string, error) { return GetArray[string](m, key) }

// Float32s returns the f32 array stored under key (shared: do not modify).
func (m *Metadata) Float32s(key string) ([]float32, error) { return GetArray[float32](m, key) }

// Int32s returns the i32 array stored under key (shared: do not modify).
func (m *Metadata) Int32s(key string) ([]int32, error) { return GetArray[int32](m, key) }

// Uint32s returns the u32 array stored under key (shared: do not modify).
func (m *Metadata) Uint32s(key string) ([]uint32, error) { return GetArray[uint32](m, key) }

// Ints returns a copy of the integer array stored under key, whatever its
// integer element type, widened to int64. It fails if the key does not hold an
// integer array or an element does not fit in int64.
func (m *Metadata) Ints(key string) ([]int64, error) {
	v, err := m.lookup(key)
	if err != nil {
		return nil, err
	}
	var out []int64
	ok := true
	switch x := v.x.(type) {
	case []uint8:
		out = widen(x)
	case []int8:
		out = widen(x)
	case []uint16:
		out = widen(x)
	case []int16:
		out = widen(x)
	case []uint32:
		out = widen(x)
	case []int32:
		out = widen(x)
	case []int64:
		out = slices.Clone(x)
	case []uint64:
		out = make([]int64, len(x))
		for i, u := range x {
			if u > math.MaxInt64 {
				ok = false
				break
			}
			out[i] = int64(u)
		}
	default:
		ok = false
	}
	if !ok {
		return nil, wrongType(key, v, "an integer array that fits in int64")
	}
	return out, nil
}

func widen[T uint8 | int8 | uint16 | int16 | uint32 | int32](xs []T) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = int64(x)
	}
	return out
}

func toInt64(x any) (int64, bool) {
	switch n := x.(type) {
	case uint8:
		return int64(n), true
	case int8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case int16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}
