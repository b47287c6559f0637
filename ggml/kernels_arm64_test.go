//go:build cgo

package ggml

import (
	"strings"
	"testing"
)

// TestKernelTargetARM64 checks that an arm64 build's fused kernels use NEON whatever -march
// it names: Advanced SIMD is part of every AArch64 CPU, so falling back to the generic kernels
// would only mean kernels.h lost its target. TestKernelTarget skips in the cross build that
// `make test-arm64` runs under qemu (CGO_CFLAGS names the target there); this test does not.
func TestKernelTargetARM64(t *testing.T) {
	got := KernelTarget()
	t.Logf("kernels: %s", got)
	if !strings.HasPrefix(got, "NEON,") {
		t.Errorf("kernels compiled for %q in an arm64 build, want NEON", got)
	}
}
