//go:build cgo && !ecotune_march

package ggml

// The fused kernels (kernels.h) choose their vector width and register blocking when they
// are compiled, from the instruction sets the target enables, so a locally built binary is
// compiled for the CPU that builds it. With the build tag ecotune_march the target comes
// from CGO_CFLAGS instead (`make MARCH=...`): a cross build, or another CPU kind's kernels
// measured on this one. A portable binary would compile kernels.h once per target (say
// -march=x86-64-v3 and x86-64-v4) under different names and pick one at start from cpuid,
// as ggml's GGML_CPU_ALL_VARIANTS does for its own kernels.

/*
#cgo CFLAGS: -march=native
*/
import "C"

// nativeMarch says the kernels were compiled for this CPU (-march=native).
const nativeMarch = true
