//go:build cgo

package ggml

/*
#include <stdlib.h>
#include "ggml.h"
#include "ggml-backend.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Tensor is a ggml tensor owned by the Context that made it; it is valid until that
// Context is closed.
type Tensor struct {
	p *C.struct_ggml_tensor
	c *Context
}

func (t *Tensor) ptr() *C.struct_ggml_tensor {
	if t == nil || t.p == nil || t.c == nil || t.c.ctx == nil {
		panic(ErrClosed)
	}
	return t.p
}

func (t *Tensor) check() error {
	if t == nil || t.p == nil || t.c == nil || t.c.ctx == nil {
		return ErrClosed
	}
	return nil
}

// Type is the tensor's element type.
func (t *Tensor) Type() Type { return Type(t.ptr()._type) }

// Ne returns the size of dimension i (0..3; ggml order, 0 fastest).
func (t *Tensor) Ne(i int) int { return int(t.ptr().ne[i]) }

// Shape returns the sizes of the tensor's dimensions, trailing 1s dropped (at least one).
func (t *Tensor) Shape() []int {
	p := t.ptr()
	n := int(C.ggml_n_dims(p))
	s := make([]int, n)
	for i := range s {
		s[i] = int(p.ne[i])
	}
	return s
}

// Ne4 returns all four dimension sizes.
func (t *Tensor) Ne4() [4]int {
	p := t.ptr()
	return [4]int{int(p.ne[0]), int(p.ne[1]), int(p.ne[2]), int(p.ne[3])}
}

// Nb returns the stride in bytes of dimension i.
func (t *Tensor) Nb(i int) int { return int(t.ptr().nb[i]) }

// Elements is the number of elements.
func (t *Tensor) Elements() int { return int(C.ggml_nelements(t.ptr())) }

// Bytes is the size of the tensor's data in bytes.
func (t *Tensor) NBytes() int { return int(C.ggml_nbytes(t.ptr())) }

// Name is the tensor's name.
func (t *Tensor) Name() string { return C.GoString(C.ggml_get_name(t.ptr())) }

// SetName names the tensor (ggml keeps at most 63 bytes) and returns it.
func (t *Tensor) SetName(name string) *Tensor {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	C.ggml_set_name(t.ptr(), cs)
	return t
}

// Src returns operand i (0..9) of the op that computes the tensor, or nil.
func (t *Tensor) Src(i int) *Tensor {
	p := t.ptr()
	if i < 0 || i >= C.GGML_MAX_SRC || p.src[i] == nil {
		return nil
	}
	return &Tensor{p: p.src[i], c: t.c}
}

// Op is ggml's name of the op that computes the tensor ("NONE" for leaves).
func (t *Tensor) Op() string { return C.GoString(C.ggml_op_desc(t.ptr())) }

// IsContiguous reports whether the tensor's elements are stored without gaps in order.
func (t *Tensor) IsContiguous() bool { return bool(C.ggml_is_contiguous(t.ptr())) }

// SetParam marks the tensor as trainable: backward passes compute its gradient.
func (t *Tensor) SetParam() *Tensor { C.ggml_set_param(t.ptr()); return t }

// SetLoss marks a scalar tensor as the loss that backward passes differentiate.
func (t *Tensor) SetLoss() *Tensor { C.ggml_set_loss(t.ptr()); return t }

// SetInput marks the tensor as a graph input the allocator must not overwrite early.
func (t *Tensor) SetInput() *Tensor { C.ggml_set_input(t.ptr()); return t }

// SetOutput marks the tensor as a graph output the allocator keeps.
func (t *Tensor) SetOutput() *Tensor { C.ggml_set_output(t.ptr()); return t }

// Allocated reports whether the tensor has data memory (a buffer) yet.
func (t *Tensor) Allocated() bool { return t.check() == nil && t.p.buffer != nil }

func (t *Tensor) dataCheck(op string, n int) error {
	if err := t.check(); err != nil {
		return err
	}
	if t.p.buffer == nil {
		return fmt.Errorf("ggml: %s %q: tensor has no data buffer (allocate it first)", op, t.Name())
	}
	if !t.IsContiguous() {
		return fmt.Errorf("ggml: %s %q: tensor is not contiguous", op, t.Name())
	}
	if n != t.NBytes() {
		return fmt.Errorf("ggml: %s %q: %d bytes given, tensor holds %d", op, t.Name(), n, t.NBytes())
	}
	if op != "set" && t.Repacked() {
		return fmt.Errorf("ggml: %s %q: a repacked tensor's bytes are not its GGUF layout", op, t.Name())
	}
	return nil
}

// SetBytes copies raw data (in the tensor's type's layout) into the tensor.
func (t *Tensor) SetBytes(b []byte) error {
	if err := t.dataCheck("set", len(b)); err != nil {
		return err
	}
	if len(b) > 0 {
		C.ggml_backend_tensor_set(t.p, unsafe.Pointer(&b[0]), 0, C.size_t(len(b)))
	}
	return nil
}

// SetBytesAt copies raw data into the tensor from byte offset on: a part of SetBytes's
// bytes, for copying a large tensor in pieces.
func (t *Tensor) SetBytesAt(b []byte, offset int) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := t.dataCheck("set", t.NBytes()); err != nil {
		return err
	}
	if offset < 0 || offset+len(b) > t.NBytes() {
		return fmt.Errorf("ggml: set %q: bytes [%d, %d) lie outside its %d", t.Name(), offset, offset+len(b), t.NBytes())
	}
	if t.Repacked() && (offset != 0 || len(b) != t.NBytes()) {
		return fmt.Errorf("ggml: set %q: a repacked tensor is written whole", t.Name())
	}
	if len(b) > 0 {
		C.ggml_backend_tensor_set(t.p, unsafe.Pointer(&b[0]), C.size_t(offset), C.size_t(len(b)))
	}
	return nil
}

// Bytes copies the tensor's raw data out.
func (t *Tensor) Bytes() ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	b := make([]byte, t.NBytes())
	if err := t.dataCheck("get", len(b)); err != nil {
		return nil, err
	}
	if len(b) > 0 {
		C.ggml_backend_tensor_get(t.p, unsafe.Pointer(&b[0]), 0, C.size_t(len(b)))
	}
	return b, nil
}

// SetF32 sets an F32 tensor's elements, or converts them into an F16, BF16 or
// quantized tensor's type (a whole tensor, rows in order).
func (t *Tensor) SetF32(v []float32) error {
	if err := t.check(); err != nil {
		return err
	}
	if len(v) != t.Elements() {
		return fmt.Errorf("ggml: set %q: %d values given, tensor has %d elements", t.Name(), len(v), t.Elements())
	}
	if t.Type() == TypeF32 {
		if err := t.dataCheck("set", 4*len(v)); err != nil {
			return err
		}
		if len(v) > 0 {
			C.ggml_backend_tensor_set(t.p, unsafe.Pointer(&v[0]), 0, C.size_t(4*len(v)))
		}
		return nil
	}
	b, err := Quantize(t.Type(), v, t.Ne(0))
	if err != nil {
		return fmt.Errorf("ggml: set %q: %w", t.Name(), err)
	}
	return t.SetBytes(b)
}

// F32 copies the tensor's elements out as float32, converting from its type.
func (t *Tensor) F32() ([]float32, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	if t.Type() == TypeF32 {
		v := make([]float32, t.Elements())
		if err := t.dataCheck("get", 4*len(v)); err != nil {
			return nil, err
		}
		if len(v) > 0 {
			C.ggml_backend_tensor_get(t.p, unsafe.Pointer(&v[0]), 0, C.size_t(4*len(v)))
		}
		return v, nil
	}
	b, err := t.Bytes()
	if err != nil {
		return nil, err
	}
	return Dequantize(t.Type(), b, t.Elements())
}

// SetI32 sets an I32 tensor's elements (token ids, positions).
func (t *Tensor) SetI32(v []int32) error {
	if err := t.check(); err != nil {
		return err
	}
	if t.Type() != TypeI32 {
		return fmt.Errorf("ggml: set %q: tensor is %s, not i32", t.Name(), t.Type())
	}
	if err := t.dataCheck("set", 4*len(v)); err != nil {
		return err
	}
	if len(v) > 0 {
		C.ggml_backend_tensor_set(t.p, unsafe.Pointer(&v[0]), 0, C.size_t(4*len(v)))
	}
	return nil
}

// I32 copies an I32 tensor's elements out.
func (t *Tensor) I32() ([]int32, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	if t.Type() != TypeI32 {
		return nil, fmt.Errorf("ggml: get %q: tensor is %s, not i32", t.Name(), t.Type())
	}
	v := make([]int32, t.Elements())
	if err := t.dataCheck("get", 4*len(v)); err != nil {
		return nil, err
	}
	if len(v) > 0 {
		C.ggml_backend_tensor_get(t.p, unsafe.Pointer(&v[0]), 0, C.size_t(4*len(v)))
	}
	return v, nil
}

// Zero sets every byte of the tensor's data to 0.
func (t *Tensor) Zero() error {
	if err := t.dataCheck("zero", t.NBytes()); err != nil {
		return err
	}
	C.ggml_backend_tensor_memset(t.p, 0, 0, C.ggml_nbytes(t.p))
	return nil
}

// CopyFrom copies src's data into t; both must have the same type and size.
func (t *Tensor) CopyFrom(src *Tensor) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := src.check(); err != nil {
		return err
	}
	if t.Type() != src.Type() || t.NBytes() != src.NBytes() || src.p.buffer == nil || t.p.buffer == nil {
		return fmt.Errorf("ggml: copy %q → %q: need two allocated tensors of the same type and size", src.Name(), t.Name())
	}
	C.ggml_backend_tensor_copy(src.p, t.p)
	return nil
}

// String describes the tensor for logs and errors.
func (t *Tensor) String() string {
	if t.check() != nil {
		return "<closed tensor>"
	}
	return fmt.Sprintf("%s %s%v", t.Name(), t.Type(), t.Shape())
}
