// Vector helpers and small dense kernels shared by the fused CPU ops (attention.c,
// lora.c, loss.c). GCC's vector extensions: 16 floats, one AVX-512 register where the
// build targets it (-march=native), two or four narrower ones elsewhere.
#ifndef ECOTUNE_KERNELS_H
#define ECOTUNE_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef float   v16  __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));

static inline v16 vld(const float * p) { v16 v; memcpy(&v, p, sizeof v); return v; }
static inline void vst(float * p, v16 v) { memcpy(p, &v, sizeof v); }
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
static inline v16 vexp(v16 x) {
    const vi16 keep = x > -87.0f;
    x = (v16)(((vi16)x & keep) | ((vi16)((v16){0} - 87.0f) & ~keep));
    const v16 t = x * 1.44269504088896341f - 0.5f;
    const vi16 n = __builtin_convertvector(t, vi16) ; // trunc(t-0.5) = round(t) for t ≤ 0.5
    const v16 fn = __builtin_convertvector(n, v16);
    const v16 f = x - fn * 0.693145751953125f - fn * 1.428606820309417232e-6f;
    v16 p = f * (1.0f / 720) + (1.0f / 120);
    p = p * f + (1.0f / 24);
    p = p * f + (1.0f / 6);
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    const vi16 bits = (vi16)p + (n << 23);
    return (v16)(bits & keep);
}

// vtanh is tanh(y) = sign(y)·(1 - e^(-2|y|)) / (1 + e^(-2|y|)).
static inline v16 vtanh(v16 y) {
    const vi16 sign = (vi16)y & (vi16)((v16){0} - 0.0f);
    const v16 ay = (v16)((vi16)y & ~sign);
    const v16 e = vexp(ay * -2.0f);
    const v16 t = (1.0f - e) / (1.0f + e);
    return (v16)((vi16)t | sign);
}

static inline float hsum(v16 v) {
    float s = 0;
    for (int i = 0; i < 16; i++) s += v[i];
    return s;
}

static inline float hmax(v16 v) {
    float m = v[0];
    for (int i = 1; i < 16; i++) m = v[i] > m ? v[i] : m;
    return m;
}

// gemm computes C[m][n] = (acc ? C[m][n] : 0) + Σ_k A(m,k)·B[k][n] for m < M, n < N,
// k < K, where A(m,k) = A[m·am + k·ak] (so either A or its transpose) and B's and C's
// rows lie ldb and ldc floats apart. Four rows by 64 columns at a time: 16 vector
// accumulators, four loads of B and four broadcasts of A per step of k.
static inline void gemm(int M, int N, int K, const float * A, ptrdiff_t am, ptrdiff_t ak,
                        const float * B, ptrdiff_t ldb, float * C, ptrdiff_t ldc, int acc) {
    int n = 0;
    for (; n + 64 <= N; n += 64) {
        int m = 0;
        for (; m + 4 <= M; m += 4) {
            v16 c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
            float * c0 = C + (ptrdiff_t)m * ldc + n, * c1 = c0 + ldc, * c2 = c1 + ldc, * c3 = c2 + ldc;
            if (acc) {
                c00 = vld(c0); c01 = vld(c0 + 16); c02 = vld(c0 + 32); c03 = vld(c0 + 48);
                c10 = vld(c1); c11 = vld(c1 + 16); c12 = vld(c1 + 32); c13 = vld(c1 + 48);
                c20 = vld(c2); c21 = vld(c2 + 16); c22 = vld(c2 + 32); c23 = vld(c2 + 48);
                c30 = vld(c3); c31 = vld(c3 + 16); c32 = vld(c3 + 32); c33 = vld(c3 + 48);
            } else {
                c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = (v16){0};
                c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = (v16){0};
            }
            const float * a = A + (ptrdiff_t)m * am;
            for (int k = 0; k < K; k++) {
                const float * b = B + (ptrdiff_t)k * ldb + n;
                const v16 b0 = vld(b), b1 = vld(b + 16), b2 = vld(b + 32), b3 = vld(b + 48);
                const float * ak0 = a + (ptrdiff_t)k * ak;
                const float x0 = ak0[0], x1 = ak0[am], x2 = ak0[2 * am], x3 = ak0[3 * am];
                c00 += x0 * b0; c01 += x0 * b1; c02 += x0 * b2; c03 += x0 * b3;
                c10 += x1 * b0; c11 += x1 * b1; c12 += x1 * b2; c13 += x1 * b3;
                c20 += x2 * b0; c21 += x2 * b1; c22 += x2 * b2; c23 += x2 * b3;
                c30 += x3 * b0; c31 += x3 * b1; c32 += x3 * b2; c33 += x3 * b3;
            }
            vst(c0, c00); vst(c0 + 16, c01); vst(c0 + 32, c02); vst(c0 + 48, c03);
            vst(c1, c10); vst(c1 + 16, c11); vst(c1 + 32, c12); vst(c1 + 48, c13);
            vst(c2, c20); vst(c2 + 16, c21); vst(c2 + 32, c22); vst(c2 + 48, c23);
            vst(c3, c30); vst(c3 + 16, c31); vst(c3 + 32, c32); vst(c3 + 48, c33);
        }
        for (; m < M; m++) {
            float * c0 = C + (ptrdiff_t)m * ldc + n;
            v16 c00, c01, c02, c03;
            if (acc) {
                c00 = vld(c0); c01 = vld(c0 + 16); c02 = vld(c0 + 32); c03 = vld(c0 + 48);
            } else {
                c00 = c01 = c02 = c03 = (v16){0};
            }
            const float * a = A + (ptrdiff_t)m * am;
            for (int k = 0; k < K; k++) {
                const float * b = B + (ptrdiff_t)k * ldb + n;
                const float x0 = a[(ptrdiff_t)k * ak];
                c00 += x0 * vld(b); c01 += x0 * vld(b + 16); c02 += x0 * vld(b + 32); c03 += x0 * vld(b + 48);
            }
            vst(c0, c00); vst(c0 + 16, c01); vst(c0 + 32, c02); vst(c0 + 48, c03);
        }
    }
    for (; n + 16 <= N; n += 16) {
        int m = 0;
        for (; m + 4 <= M; m += 4) {
            float * c0 = C + (ptrdiff_t)m * ldc + n, * c1 = c0 + ldc, * c2 = c1 + ldc, * c3 = c2 + ldc;
            v16 c00, c10, c20, c30;
            if (acc) {
                c00 = vld(c0); c10 = vld(c1); c20 = vld(c2); c30 = vld(c3);
            } else {
                c00 = c10 = c20 = c30 = (v16){0};
            }
            const float * a = A + (ptrdiff_t)m * am;
            for (int k = 0; k < K; k++) {
                const v16 b0 = vld(B + (ptrdiff_t)k * ldb + n);
                const float * ak0 = a + (ptrdiff_t)k * ak;
                c00 += ak0[0] * b0; c10 += ak0[am] * b0; c20 += ak0[2 * am] * b0; c30 += ak0[3 * am] * b0;
            }
            vst(c0, c00); vst(c1, c10); vst(c2, c20); vst(c3, c30);
        }
        for (; m < M; m++) {
            float * c0 = C + (ptrdiff_t)m * ldc + n;
            v16 c00 = acc ? vld(c0) : (v16){0};
            const float * a = A + (ptrdiff_t)m * am;
            for (int k = 0; k < K; k++) {
                c00 += a[(ptrdiff_t)k * ak] * vld(B + (ptrdiff_t)k * ldb + n);
            }
            vst(c0, c00);
        }
    }
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
