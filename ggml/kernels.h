// Vector helpers and small dense kernels shared by the fused CPU ops (attention.c,
// lora.c, loss.c), in GCC's vector extensions. The vector width and the register blocking
// follow the instruction set the build targets (-march=native, or `make MARCH=...`):
//
//   AVX-512        16 floats a vector, 32 registers: gemm tiles of 4 rows × 4 vectors
//   AVX2 (or AVX)   8 floats, 16 registers: tiles of 6 rows × 2 vectors
//   ARM NEON        4 floats, 32 registers: tiles of 4 rows × 4 vectors
//   anything else   4 floats (SSE2 on x86-64, or scalar code GCC makes of it): 4 × 2
//
// A tile keeps its MR·NV accumulators, NV loads of B and one broadcast of A in registers;
// a vector wider than the target's registers (16 floats on AVX2, say) would be split by
// GCC into halves that no longer fit and spill. Every product sums over k in the same
// order whatever the tile, so gemm's results do not depend on the target; only horizontal
// sums (hsum) and the reductions built on them do, by the rounding of a different order.
#ifndef ECOTUNE_KERNELS_H
#define ECOTUNE_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#if defined(__AVX512F__)
#define VW 16
#define GEMM_MR 4
#define GEMM_NV 4
#define OUTER_NV 2
#elif defined(__AVX2__) || defined(__AVX__)
#define VW 8
#define GEMM_MR 6
#define GEMM_NV 2
#define OUTER_NV 1
#elif defined(__ARM_NEON) || defined(__aarch64__)
#define VW 4
#define GEMM_MR 4
#define GEMM_NV 4
#define OUTER_NV 2
#else
#define VW 4
#define GEMM_MR 4
#define GEMM_NV 2
#define OUTER_NV 1
#endif

// vf is one vector of VW floats, vi one of VW 32-bit integers (comparison results, bits).
typedef float   vf __attribute__((vector_size(VW * 4)));
typedef int32_t vi __attribute__((vector_size(VW * 4)));

#define ECOTUNE_INLINE static inline __attribute__((always_inline))

ECOTUNE_INLINE vf vld(const float * p) { vf v; memcpy(&v, p, sizeof v); return v; }
ECOTUNE_INLINE void vst(float * p, vf v) { memcpy(p, &v, sizeof v); }
ECOTUNE_INLINE vf vmax(vf a, vf b) { return (vf)(((vi)a & (a > b)) | ((vi)b & ~(a > b))); }
static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

// split gives thread ith of nth its share [lo, hi) of n items.
static inline void split(int n, int ith, int nth, int * lo, int * hi) {
    *lo = (int)((int64_t)n * ith / nth);
    *hi = (int)((int64_t)n * (ith + 1) / nth);
}

// vexp is e^x for x ≤ ~0 (scores minus a row maximum or log-sum-exp), 0 below -87
// and for -inf or NaN: Cody-Waite reduction to f in [-ln2/2, ln2/2] and a degree-6
// Taylor polynomial (relative error ~1e-7).
ECOTUNE_INLINE vf vexp(vf x) {
    const vi keep = x > -87.0f;
    x = (vf)(((vi)x & keep) | ((vi)((vf){0} - 87.0f) & ~keep));
    const vf t = x * 1.44269504088896341f - 0.5f;
    const vi n = __builtin_convertvector(t, vi); // trunc(t-0.5) = round(t) for t ≤ 0.5
    const vf fn = __builtin_convertvector(n, vf);
    const vf f = x - fn * 0.693145751953125f - fn * 1.428606820309417232e-6f;
    vf p = f * (1.0f / 720) + (1.0f / 120);
    p = p * f + (1.0f / 24);
    p = p * f + (1.0f / 6);
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    const vi bits = (vi)p + (n << 23);
    return (vf)(bits & keep);
}

// vtanh is tanh(y) = sign(y)·(1 - e^(-2|y|)) / (1 + e^(-2|y|)).
ECOTUNE_INLINE vf vtanh(vf y) {
    const vi sign = (vi)y & (vi)((vf){0} - 0.0f);
    const vf ay = (vf)((vi)y & ~sign);
    const vf e = vexp(ay * -2.0f);
    const vf t = (1.0f - e) / (1.0f + e);
    return (vf)((vi)t | sign);
}

ECOTUNE_INLINE float hsum(vf v) {
    float s = 0;
    for (int i = 0; i < VW; i++) s += v[i];
    return s;
}

ECOTUNE_INLINE float hmax(vf v) {
    float m = v[0];
    for (int i = 1; i < VW; i++) m = v[i] > m ? v[i] : m;
    return m;
}

// row_max returns the largest of m and the n values of x.
static inline float row_max(const float * x, int n, float m) {
    int i = 0;
    if (n >= VW) {
        vf vm = vld(x);
        for (i = VW; i + VW <= n; i += VW) vm = vmax(vld(x + i), vm);
        const float cm = hmax(vm);
        m = cm > m ? cm : m;
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

// sum_exp returns Σ e^(x - m) over the n values of x, for m at least their maximum.
static inline float sum_exp(const float * x, int n, float m) {
    vf vs = {0};
    int i = 0;
    for (; i + VW <= n; i += VW) vs += vexp(vld(x + i) - m);
    float s = hsum(vs);
    for (; i < n; i++) s += expf(x[i] - m);
    return s;
}

// gemm_tile adds (acc) or writes Σ_k A(i,k)·B[k][j·VW..] to C for mr rows i and nv vectors
// j of C, in registers. mr and nv are constants where it is inlined, so the loops unroll
// and the accumulators stay in registers.
ECOTUNE_INLINE void gemm_tile(const int mr, const int nv, int K, const float * a, ptrdiff_t am, ptrdiff_t ak,
                              const float * b, ptrdiff_t ldb, float * c, ptrdiff_t ldc, int acc) {
    vf t[GEMM_MR][GEMM_NV];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
#pragma GCC unroll 8
        for (int j = 0; j < nv; j++) t[i][j] = acc ? vld(c + i * ldc + j * VW) : (vf){0};
    }
    for (int k = 0; k < K; k++) {
        vf bk[GEMM_NV];
        const float * bp = b + (ptrdiff_t)k * ldb;
#pragma GCC unroll 8
        for (int j = 0; j < nv; j++) bk[j] = vld(bp + j * VW);
        const float * ap = a + (ptrdiff_t)k * ak;
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            const float x = ap[i * am];
#pragma GCC unroll 8
            for (int j = 0; j < nv; j++) t[i][j] += x * bk[j];
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
#pragma GCC unroll 8
        for (int j = 0; j < nv; j++) vst(c + i * ldc + j * VW, t[i][j]);
    }
}

// gemm_panel computes the nv vectors of columns from C's first for all M rows: GEMM_MR
// rows a tile, then one tile of the rows left.
ECOTUNE_INLINE void gemm_panel(const int nv, int M, int K, const float * A, ptrdiff_t am, ptrdiff_t ak,
                               const float * B, ptrdiff_t ldb, float * C, ptrdiff_t ldc, int acc) {
    int m = 0;
    for (; m + GEMM_MR <= M; m += GEMM_MR) {
        gemm_tile(GEMM_MR, nv, K, A + (ptrdiff_t)m * am, am, ak, B, ldb, C + (ptrdiff_t)m * ldc, ldc, acc);
    }
    const float * a = A + (ptrdiff_t)m * am;
    float * c = C + (ptrdiff_t)m * ldc;
    switch (M - m) {
    case 1: gemm_tile(1, nv, K, a, am, ak, B, ldb, c, ldc, acc); break;
    case 2: gemm_tile(2, nv, K, a, am, ak, B, ldb, c, ldc, acc); break;
#if GEMM_MR > 3
    case 3: gemm_tile(3, nv, K, a, am, ak, B, ldb, c, ldc, acc); break;
#endif
#if GEMM_MR > 4
    case 4: gemm_tile(4, nv, K, a, am, ak, B, ldb, c, ldc, acc); break;
#endif
#if GEMM_MR > 5
    case 5: gemm_tile(5, nv, K, a, am, ak, B, ldb, c, ldc, acc); break;
#endif
    default: break;
    }
}

// gemm computes C[m][n] = (acc ? C[m][n] : 0) + Σ_k A(m,k)·B[k][n] for m < M, n < N,
// k < K, where A(m,k) = A[m·am + k·ak] (so either A or its transpose) and B's and C's
// rows lie ldb and ldc floats apart: panels of GEMM_NV vectors, then single vectors, then
// single columns.
static inline void gemm(int M, int N, int K, const float * A, ptrdiff_t am, ptrdiff_t ak,
                        const float * B, ptrdiff_t ldb, float * C, ptrdiff_t ldc, int acc) {
    int n = 0;
    for (; n + GEMM_NV * VW <= N; n += GEMM_NV * VW) gemm_panel(GEMM_NV, M, K, A, am, ak, B + n, ldb, C + n, ldc, acc);
    for (; n + VW <= N; n += VW) gemm_panel(1, M, K, A, am, ak, B + n, ldb, C + n, ldc, acc);
    for (; n < N; n++) {
        for (int m = 0; m < M; m++) {
            float s = acc ? C[(ptrdiff_t)m * ldc + n] : 0;
            for (int k = 0; k < K; k++) {
                s += A[(ptrdiff_t)m * am + (ptrdiff_t)k * ak] * B[(ptrdiff_t)k * ldb + n];
            }
            C[(ptrdiff_t)m * ldc + n] = s;
        }
    }
}

#endif
