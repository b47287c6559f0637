package bindings

/*
#include "llama.h"
#include "ggml-backend.h"
*/
import "C"

import (
	"runtime"
	"sync"
)

// backendOnce guards llama_backend_init. llama.cpp keeps its backend registry and timers
// in process-wide state that must be set up exactly once before any model is loaded, so
// this is one of the two pieces of package-level state the bindings keep (the other is
// the log sink in log.go). The backend is never freed: llama_backend_free is only safe
// once every model and context is gone, which a library cannot know, and the OS reclaims
// it at exit.
var backendOnce sync.Once

// initBackend routes llama.cpp's log to slog and initializes the backend, once per
// process; every entry point that reaches libllama calls it first.
func initBackend() {
	backendOnce.Do(func() {
		installLogSink()
		C.llama_backend_init()
	})
}

// Version returns the version string of the linked libllama.
func Version() string {
	return C.GoString(C.llama_version())
}

// SystemInfo returns llama.cpp's description of the CPU features and backends it was built with.
func SystemInfo() string {
	initBackend()
	return C.GoString(C.llama_print_system_info())
}

// SupportsGPUOffload reports whether the linked llama.cpp can place layers on a GPU.
func SupportsGPUOffload() bool {
	initBackend()
	return bool(C.llama_supports_gpu_offload())
}

// onCPU reports whether m's layers all stay in host memory: no RPC servers, and no GPU
// to offload to or no layers asked for one.
func (m *Model) onCPU() bool {
	initBackend()
	gpu := C.ggml_backend_dev_by_type(C.GGML_BACKEND_DEVICE_TYPE_GPU) != nil ||
		C.ggml_backend_dev_by_type(C.GGML_BACKEND_DEVICE_TYPE_IGPU) != nil
	return len(m.opts.RPCServers) == 0 && (m.opts.GPULayers == 0 || !gpu)
}

// SupportsMmap reports whether llama.cpp can memory-map model files on this platform.
func SupportsMmap() bool {
	return bool(C.llama_supports_mmap())
}

// defaultThreads is the thread count used when ContextOptions leaves Threads at zero:
// one per CPU, since llama.cpp's own default (4) oversubscribes small machines.
func defaultThreads() int {
	return runtime.NumCPU()
}
