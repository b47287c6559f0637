package ggml

import (
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestKernelTarget checks that a native build's fused kernels use the widest vectors this
// CPU has: with -march=native lost from the cgo flags they would fall back to 4-float
// vectors, several times slower, and every numerical test would still pass.
func TestKernelTarget(t *testing.T) {
	got := KernelTarget()
	t.Logf("kernels: %s", got)
	if !nativeMarch {
		t.Skip("built for another CPU (ecotune_march): " + got)
	}
	var want string
	switch {
	case runtime.GOARCH == "amd64" && cpu.X86.HasAVX512F:
		want = "AVX-512"
	case runtime.GOARCH == "amd64" && cpu.X86.HasAVX2:
		want = "AVX2"
	case runtime.GOARCH == "amd64" && cpu.X86.HasAVX:
		want = "AVX"
	case runtime.GOARCH == "arm64":
		want = "NEON"
	default:
		want = "generic"
	}
	if !strings.HasPrefix(got, want+",") {
		t.Errorf("kernels compiled for %q on a CPU with %s", got, want)
	}
}
