//go:build cgo

package ggml

/*
const char * ecotune_kernel_target(void);
*/
import "C"

// KernelTarget names the instruction set ecotune's fused CPU kernels were compiled for, with their vector width and gemm tile.
func KernelTarget() string { return C.GoString(C.ecotune_kernel_target()) }
