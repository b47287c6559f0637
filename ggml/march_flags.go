//go:build cgo && ecotune_march

package ggml

// nativeMarch says the kernels were compiled for this CPU; under ecotune_march CGO_CFLAGS
// named another target.
const nativeMarch = false
