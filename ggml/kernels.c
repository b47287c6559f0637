//go:build cgo

#include "kernels.h"

#if defined(__AVX512F__)
#define TARGET "AVX-512"
#elif defined(__AVX2__)
#define TARGET "AVX2"
#elif defined(__AVX__)
#define TARGET "AVX"
#elif defined(__ARM_NEON) || defined(__aarch64__)
#define TARGET "NEON"
#else
#define TARGET "generic"
#endif

#define STR2(x) #x
#define STR(x) STR2(x)

const char * ecotune_kernel_target(void) {
    return TARGET ", " STR(VW) " floats a vector, gemm tiles " STR(GEMM_MR) "x" STR(GEMM_NV);
}
