// Force-included into ggml's CUDA sources when the toolkit is older than 12.0 (Debian
// bookworm ships 11.8). ggml at the pinned commit enables Programmatic Dependent Launch
// from CUDA 11.8 on, but 11.8's headers lack the device-side PDL calls. These stand-ins
// let it compile; they are only correct because the binary also turns PDL launches off
// (GGML_CUDA_PDL=0, set by ggml/link_cuda.go and bindings/link_cuda.go), so no kernel
// ever starts before its predecessor finished and the calls have nothing to wait for.
#pragma once
#include <cuda_runtime_api.h>
#if defined(__CUDACC__) && CUDART_VERSION < 12000
static __device__ __forceinline__ void cudaGridDependencySynchronize(void) {}
static __device__ __forceinline__ void cudaTriggerProgrammaticLaunchCompletion(void) {}
#endif
