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

// Context is an arena of tensor metadata and graphs. Tensor data lives elsewhere: in a
// Buffer (AllocTensors) or in memory a Scheduler allocates for a graph.
type Context struct {
	ctx      *C.struct_ggml_context
	nTensors int
	// own are the buffers AllocTensors made for this context's tensors; any other
	// buffer a tensor points at was given to it by a Scheduler.
	own []C.ggml_backend_buffer_t
}

// NewContext returns a context with room for maxTensors tensors and one graph of up to
// graphNodes nodes with gradients (graphNodes 0: no graph).
func NewContext(maxTensors, graphNodes int) (*Context, error) {
	if maxTensors < 1 || graphNodes < 0 {
		return nil, fmt.Errorf("ggml: NewContext(%d, %d): sizes must be positive", maxTensors, graphNodes)
	}
	size := C.size_t(maxTensors)*C.ggml_tensor_overhead() + 1024
	if graphNodes > 0 {
		size += C.ggml_graph_overhead_custom(C.size_t(graphNodes), true)
	}
	ctx := C.ggml_init(C.struct_ggml_init_params{mem_size: size, mem_buffer: nil, no_alloc: true})
	if ctx == nil {
		return nil, fmt.Errorf("ggml: ggml_init of %d bytes: %w", size, ErrOutOfMemory)
	}
	return &Context{ctx: ctx}, nil
}

// Close frees the context, its tensors' metadata and its graphs. Safe to call twice.
func (c *Context) Close() error {
	if c == nil || c.ctx == nil {
		return nil
	}
	C.ggml_free(c.ctx)
	c.ctx = nil
	return nil
}

func (c *Context) live() *C.struct_ggml_context {
	if c == nil || c.ctx == nil {
		panic(ErrClosed)
	}
	return c.ctx
}

// reserve checks there is room for n more tensors, since ggml aborts when there is not.
func (c *Context) reserve(op string, n int) *C.struct_ggml_context {
	ctx := c.live()
	need := C.size_t(n) * C.ggml_tensor_overhead()
	if C.ggml_used_mem(ctx)+need > C.ggml_get_mem_size(ctx) {
		opErrorf(op, "context is full (%d tensors made): create it with more room", c.nTensors)
	}
	c.nTensors += n
	return ctx
}

// wrap returns the Go handle of a tensor made in c.
func (c *Context) wrap(p *C.struct_ggml_tensor) *Tensor {
	if p == nil {
		opErrorf("new tensor", "ggml returned no tensor")
	}
	return &Tensor{p: p, c: c}
}

// NewTensor makes a tensor of type t with shape ne (ggml order: ne[0] varies fastest; up
// to 4 dimensions). Its data is allocated later by AllocTensors or a Scheduler.
func (c *Context) NewTensor(t Type, ne ...int) *Tensor {
	if !t.valid() {
		opErrorf("new tensor", "invalid type %d", int32(t))
	}
	if len(ne) < 1 || len(ne) > 4 {
		opErrorf("new tensor", "need 1 to 4 dimensions, got %d", len(ne))
	}
	var dims [4]C.int64_t
	for i := range dims {
		dims[i] = 1
	}
	total := int64(1)
	for i, n := range ne {
		if n < 1 {
			opErrorf("new tensor", "dimension %d is %d", i, n)
		}
		if total > (1<<62)/int64(n) {
			opErrorf("new tensor", "shape %v overflows", ne)
		}
		total *= int64(n)
		dims[i] = C.int64_t(n)
	}
	if ne[0]%t.BlockSize() != 0 {
		opErrorf("new tensor", "%s rows need a multiple of %d elements, got %d", t, t.BlockSize(), ne[0])
	}
	ctx := c.reserve("new tensor", 1)
	return c.wrap(C.ggml_new_tensor(ctx, C.enum_ggml_type(t), C.int(len(ne)), (*C.int64_t)(unsafe.Pointer(&dims[0]))))
}

// Tensors lists the tensors made in c, in creation order.
func (c *Context) Tensors() []*Tensor {
	ctx := c.live()
	var out []*Tensor
	for p := C.ggml_get_first_tensor(ctx); p != nil; p = C.ggml_get_next_tensor(ctx, p) {
		out = append(out, &Tensor{p: p, c: c})
	}
	return out
}

// Lookup returns the tensor named name made in c, or nil.
func (c *Context) Lookup(name string) *Tensor {
	ctx := c.live()
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	p := C.ggml_get_tensor(ctx, cs)
	if p == nil {
		return nil
	}
	return &Tensor{p: p, c: c}
}
