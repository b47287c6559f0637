//go:build cgo

package ggml

/*
#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
*/
import "C"

import "fmt"

// Buffer is backend memory holding the data of a Context's tensors.
type Buffer struct {
	b C.ggml_backend_buffer_t
}

// AllocTensors allocates memory on backend for every tensor of c not yet allocated.
// Tensors keep pointing into the buffer: close it only when they are no longer used.
func (c *Context) AllocTensors(backend *Backend) (*Buffer, error) {
	if c == nil || c.ctx == nil || backend == nil || backend.b == nil {
		return nil, ErrClosed
	}
	b := C.ggml_backend_alloc_ctx_tensors(c.ctx, backend.b)
	if b == nil {
		return nil, fmt.Errorf("ggml: allocating tensors on %s (or nothing to allocate): %w", backend.Name(), ErrOutOfMemory)
	}
	c.own = append(c.own, b)
	return &Buffer{b: b}, nil
}

// Size is the buffer's size in bytes.
func (b *Buffer) Size() int {
	if b == nil || b.b == nil {
		return 0
	}
	return int(C.ggml_backend_buffer_get_size(b.b))
}

// Clear sets every byte of the buffer to value.
func (b *Buffer) Clear(value byte) error {
	if b == nil || b.b == nil {
		return ErrClosed
	}
	C.ggml_backend_buffer_clear(b.b, C.uint8_t(value))
	return nil
}

// MarkWeights tells schedulers that the buffer holds weights, so ops using them run on
// the buffer's backend.
func (b *Buffer) MarkWeights() {
	if b != nil && b.b != nil {
		C.ggml_backend_buffer_set_usage(b.b, C.GGML_BACKEND_BUFFER_USAGE_WEIGHTS)
	}
}

// Close frees the buffer. Safe to call twice.
func (b *Buffer) Close() error {
	if b == nil || b.b == nil {
		return nil
	}
	C.ggml_backend_buffer_free(b.b)
	b.b = nil
	return nil
}
