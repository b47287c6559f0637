//go:build cgo

package ggml

/*
#include <stdlib.h>
#include "ggml.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
*/
import "C"

import (
	"fmt"
	"runtime"
)

// CPUHasBF16 reports whether this build's CPU kernels multiply BF16 natively
// (AVX512-BF16), where a BF16 product runs about twice as fast as an F32 one.
func CPUHasBF16() bool { return C.ggml_cpu_has_avx512_bf16() != 0 }

// CPUHasF16C reports whether this build's CPU kernels convert F16 with x86's F16C, where
// ggml multiplies F16 matrices with F32 sums, faster than F32 ones (1.4× on AVX2 at a
// 3B model's shapes). ARM's F16 products sum in F16, too short for thousands of terms.
func CPUHasF16C() bool { return C.ggml_cpu_has_f16c() != 0 }

// Backend is a device that computes graphs: the CPU, or a GPU when built with CUDA.
type Backend struct {
	b    C.ggml_backend_t
	name string
	cpu  bool
}

// DeviceInfo describes one compute device ggml can use.
type DeviceInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	GPU         bool   `json:"gpu"`
	FreeBytes   uint64 `json:"free_bytes"`
	TotalBytes  uint64 `json:"total_bytes"`
}

// Devices lists the devices of every backend compiled into this binary.
func Devices() []DeviceInfo {
	n := int(C.ggml_backend_dev_count())
	out := make([]DeviceInfo, 0, n)
	for i := 0; i < n; i++ {
		d := C.ggml_backend_dev_get(C.size_t(i))
		var free, total C.size_t
		C.ggml_backend_dev_memory(d, &free, &total)
		t := C.ggml_backend_dev_type(d)
		out = append(out, DeviceInfo{
			Name:        C.GoString(C.ggml_backend_dev_name(d)),
			Description: C.GoString(C.ggml_backend_dev_description(d)),
			GPU:         t == C.GGML_BACKEND_DEVICE_TYPE_GPU,
			FreeBytes:   uint64(free),
			TotalBytes:  uint64(total),
		})
	}
	return out
}

// GPUCount is the number of GPU devices available (0 in a CPU-only build).
func GPUCount() int {
	n := 0
	for _, d := range Devices() {
		if d.GPU {
			n++
		}
	}
	return n
}

// NewCPUBackend returns a CPU backend using threads threads (runtime.NumCPU() if ≤ 0).
func NewCPUBackend(threads int) (*Backend, error) {
	b := C.ggml_backend_cpu_init()
	if b == nil {
		return nil, fmt.Errorf("ggml: CPU backend init failed")
	}
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	C.ggml_backend_cpu_set_n_threads(b, C.int(threads))
	return &Backend{b: b, name: C.GoString(C.ggml_backend_name(b)), cpu: true}, nil
}

// NewGPUBackend returns a backend on the index-th GPU device.
func NewGPUBackend(index int) (*Backend, error) {
	n := int(C.ggml_backend_dev_count())
	seen := 0
	for i := 0; i < n; i++ {
		d := C.ggml_backend_dev_get(C.size_t(i))
		if C.ggml_backend_dev_type(d) != C.GGML_BACKEND_DEVICE_TYPE_GPU {
			continue
		}
		if seen == index {
			b := C.ggml_backend_dev_init(d, nil)
			if b == nil {
				return nil, fmt.Errorf("ggml: init of GPU %d (%s) failed", index, C.GoString(C.ggml_backend_dev_name(d)))
			}
			return &Backend{b: b, name: C.GoString(C.ggml_backend_name(b))}, nil
		}
		seen++
	}
	return nil, fmt.Errorf("ggml: no GPU %d (this binary sees %d; build with `make CUDA=1` for CUDA)", index, seen)
}

// Name is ggml's name of the backend ("CPU", "CUDA0", ...).
func (b *Backend) Name() string { return b.name }

// IsCPU reports whether the backend computes on the CPU.
func (b *Backend) IsCPU() bool { return b.cpu }

// SetThreads changes the number of threads of a CPU backend; other backends ignore it.
func (b *Backend) SetThreads(n int) error {
	if b == nil || b.b == nil {
		return ErrClosed
	}
	if b.cpu && n > 0 {
		C.ggml_backend_cpu_set_n_threads(b.b, C.int(n))
	}
	return nil
}

// Supports reports whether the backend can compute t's op with t's operand types.
func (b *Backend) Supports(t *Tensor) bool {
	if b == nil || b.b == nil || t == nil {
		return false
	}
	return bool(C.ggml_backend_supports_op(b.b, t.ptr()))
}

// Close frees the backend. It is safe to call more than once.
func (b *Backend) Close() error {
	if b == nil || b.b == nil {
		return nil
	}
	C.ggml_backend_free(b.b)
	b.b = nil
	return nil
}
