//go:build cgo && cuda

package bindings

// Built by `make CUDA=1`, which points build/cuda at its cache directory. The CUDA runtime
// and cuBLAS are linked dynamically from the toolkit (/usr/local/cuda by default).

/*
#cgo CFLAGS: -I${SRCDIR}/../build/cuda/include -O2
#cgo LDFLAGS: -L${SRCDIR}/../build/cuda/lib -lllama -lggml -lggml-cuda -lggml-cpu -lggml-base
#cgo LDFLAGS: -L/usr/local/cuda/lib64 -L/usr/local/cuda/lib64/stubs -lcudart -lcublas -lcublasLt -lcuda -lstdc++ -lm -lpthread -ldl -lrt
*/
import "C"
