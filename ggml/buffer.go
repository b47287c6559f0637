//go:build cgo

package ggml

/*
#include <string.h>
#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

// ecotune_repack_buft returns the CPU backend's CPU_REPACK buffer type, or NULL.
static ggml_backend_buffer_type_t ecotune_repack_buft(void) {
	ggml_backend_reg_t reg = ggml_backend_cpu_reg();
	ggml_backend_dev_get_extra_bufts_t extra = (ggml_backend_dev_get_extra_bufts_t)
		ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts");
	if (extra == NULL || ggml_backend_reg_dev_count(reg) == 0) return NULL;
	for (ggml_backend_buffer_type_t * b = extra(ggml_backend_reg_dev_get(reg, 0)); b != NULL && *b != NULL; b++) {
		if (strcmp(ggml_backend_buft_name(*b), "CPU_REPACK") == 0) return *b;
	}
	return NULL;
}

static int ecotune_is_repacked(const struct ggml_tensor * t) {
	return t->buffer != NULL && strcmp(ggml_backend_buffer_name(t->buffer), "CPU_REPACK") == 0;
}
*/
import "C"

import (
	"fmt"
	"runtime"
)

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

// CanRepack reports whether a frozen weight of type t with the given number of rows can
// live in the CPU backend's repacking buffer (AllocRepacked), where llama.cpp's CPU
// backend multiplies by it with its faster interleaved kernels (1.7× on a 3B Q4_K_M
// forward pass on an AVX-512 Zen 4), and DequantTranspose still reads it. That is Q4_K
// on x86 with AVX2, in groups of 8 rows: the layout llama.cpp picks there (q4_K_8x8),
// which transpose.c restates. Other CPUs and types keep the plain layout.
func CanRepack(t Type, rows int) bool {
	return t == TypeQ4_K && rows%8 == 0 && runtime.GOARCH == "amd64" &&
		C.ggml_cpu_has_avx2() != 0 && C.ecotune_repack_buft() != nil
}

// AllocRepacked allocates every tensor of c not yet allocated in the CPU backend's
// repacking buffer; each must satisfy CanRepack, and is written once, whole, with
// SetBytes (the buffer repacks what it is given; its bytes cannot be read back as
// written).
func (c *Context) AllocRepacked() (*Buffer, error) {
	if c == nil || c.ctx == nil {
		return nil, ErrClosed
	}
	buft := C.ecotune_repack_buft()
	if buft == nil {
		return nil, fmt.Errorf("ggml: this CPU backend has no repacking buffer")
	}
	for p := C.ggml_get_first_tensor(c.ctx); p != nil; p = C.ggml_get_next_tensor(c.ctx, p) {
		if p.data == nil && !CanRepack(Type(p._type), int(p.ne[1])) {
			return nil, fmt.Errorf("ggml: %s (%s, %d rows) cannot be repacked", C.GoString(&p.name[0]), Type(p._type), int(p.ne[1]))
		}
	}
	b := C.ggml_backend_alloc_ctx_tensors_from_buft(c.ctx, buft)
	if b == nil {
		return nil, fmt.Errorf("ggml: allocating repacked tensors (or nothing to allocate): %w", ErrOutOfMemory)
	}
	c.own = append(c.own, b)
	return &Buffer{b: b}, nil
}

// Repacked reports whether t lives in the CPU's repacking buffer (Context.AllocRepacked).
func (t *Tensor) Repacked() bool { return t != nil && t.p != nil && C.ecotune_is_repacked(t.p) != 0 }

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
