//go:build cgo && cuda

package bindings

// Built by `make CUDA=1`, which points build/cuda at its cache directory. The CUDA runtime
// and cuBLAS are linked dynamically from the toolkit (/usr/local/cuda or the system's).

/*
#cgo CFLAGS: -I${SRCDIR}/../build/cuda/include -I/usr/local/cuda/include -O2
#cgo LDFLAGS: -L${SRCDIR}/../build/cuda/lib -lllama -lggml -lggml-cuda -lggml-cpu -lggml-rpc -lggml-base
#cgo LDFLAGS: -L/usr/local/cuda/lib64 -L/usr/local/cuda/lib64/stubs -lcudart -lcublas -lcublasLt -lcuda -lstdc++ -lm -lpthread -ldl -lrt
#include <cuda_runtime_api.h>
static int ecotune_cudart_version(void) { return CUDART_VERSION; }
*/
import "C"

import "os"

func init() {
	// With a toolkit older than 12.0 ggml's kernels are built without their
	// programmatic-dependent-launch waits (scripts/cuda11_compat.h), so PDL launches
	// must stay off for results to be correct. ggml reads this once, at first launch.
	if C.ecotune_cudart_version() < 12000 {
		os.Setenv("GGML_CUDA_PDL", "0")
	}
}
