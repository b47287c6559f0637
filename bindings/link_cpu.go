//go:build cgo && !cuda

package bindings

// The static libraries come from `make` (scripts/build-native.sh), which points
// build/cpu at a cache directory keyed by the pinned llama.cpp source and build options.

/*
#cgo CFLAGS: -I${SRCDIR}/../build/cpu/include -O2
#cgo LDFLAGS: -L${SRCDIR}/../build/cpu/lib -lllama -lggml -lggml-cpu -lggml-rpc -lggml-base -lstdc++ -lm -lpthread
*/
import "C"
