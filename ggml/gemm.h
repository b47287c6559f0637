// Small dense kernels for the fused CPU ops (attention.c).
#ifndef ECOTUNE_GEMM_H
#define ECOTUNE_GEMM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef float   v16  __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));

static inline v16 ld(const float * p) { v16 v; memcpy(&v, p, sizeof v); return v; }
static inline void st(float * p, v16 v) { memcpy(p, &v, sizeof v); }
static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

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
                c00 = ld(c0); c01 = ld(c0 + 16); c02 = ld(c0 + 32); c03 = ld(c0 + 48);
                c10 = ld(c1); c11 = ld(c1 + 16); c12 = ld(c1 + 32); c13 = ld(c1 + 48);
                c20 = ld(c2); c21 = ld(c2 + 16); c22 = ld(c2 + 32); c23 = ld(c2 + 48);
                c30 = ld(c3); c31 = ld(c3 + 16); c32 = ld(c3 + 32); c33 = ld(c3 + 48);
            } else {
                c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = (v16){0};
                c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = (v16){0};
            }
            const float * a = A + (ptrdiff_t)m * am;
            for (int k = 0; k < K; k++) {
                const float * b = B + (ptrdiff_t)k * ldb + n;
                const v16 b0 = ld(b), b1 = ld(b + 16), b2 = ld(b + 32), b3 = ld(b + 48);
                const float * ak0 = a + (ptrdiff_t)k * ak;
                const float x0 = ak0[0], x1 = ak0[am], x2 = ak0[2 * am], x3 = ak0[3 * am];
                c00 += x0 * b0; c01 += x0 * b1; c02 += x0 * b2; c03 += x0 * b3;
                c10 += x1 * b0; c11 += x1 * b1; c12 += x1 * b2; c13 += x1 * b3;
                c20 += x2 * b0; c21 += x2 * b1; c22 += x2 * b2; c23 += x2 * b3;
                c30 += x3 * b0; c31 += x3 * b1; c32 += x3 * b2; c33 += x3 * b3;
            }
            st(c0, c00); st(c0 + 16, c01); st(c0 + 32, c02); st(c0 + 48, c03);
            st(c1, c10); st(c1 + 16, c11); st(c1 + 32, c12); st(c1 + 48, c13);
            st(c2, c20); st(c2 + 16, c21); st(c2 + 32, c22); st(c2 + 48, c23);
            st(c3, c30); st(c3 + 16, c31); st(c3 + 32, c32); st(c3 + 48, c33);
        }
        for (; m < M; m++) {
            float * c0 = C + (ptrdiff_t)m * ldc + n;
            v16 c00, c01, c02, c03;
            if (acc) {
                c00 = ld(c0); c01 = ld(c0 + 16); c02 = ld(c0 + 32); c03 = ld(c0 + 48);
            } else {
                c00 = c01 = c02 = c03 = (v16){0};
            }
            const float * a = A + (ptrdiff_t)m * am;
            for (int k = 0; k < K; k++) {
                const float * b = B + (ptrdiff_t)k * ldb + n;
                const float x0 = a[(ptrdiff_t)k * ak];
                c00 += x0 * ld(b); c01 += x0 * ld(b + 16); c02 += x0 * ld(b + 32); c03 += x0 * ld(b + 48);
            }
            st(c0, c00); st(c0 + 16, c01); st(c0 + 32, c02); st(c0 + 48, c03);
        }
    }
    for (; n + 16 <= N; n += 16) {
        int m = 0;
        for (; m + 4 <= M; m += 4) {
            float * c0 = C + (ptrdiff_t)m * ldc + n, * c1 = c0 + ldc, * c2 = c1 + ldc, * c3 = c2 + ldc;
            v16 c00, c10, c20, c30;
            if (acc) {
                c00 = ld(c0); c10 = ld(c1); c20 = ld(c2); c30 = ld(c3);
            } else {
                c00 = c10 = c20 = c30 = (v16){0};
            }
            const float * a = A + (ptrdiff_t)m * am;
            for (int k = 0; k < K; k++) {
                const v16 b0 = ld(B + (ptrdiff_t)k * ldb + n);
                const float * ak0 = a + (ptrdiff_t)k * ak;
                c00 += ak0[0] * b0; c10 += ak0[am] * b0; c20 += ak0[2 * am] * b0; c30 += ak0[3 * am] * b0;
            }
            st(c0, c00); st(c1, c10); st(c2, c20); st(c3, c30);
        }
        for (; m < M; m++) {
            float * c0 = C + (ptrdiff_t)m * ldc + n;
            v16 c00 = acc ? ld(c0) : (v16){0};
            const float * a = A + (ptrdiff_t)m * am;
            for (int k = 0; k < K; k++) {
                c00 += a[(ptrdiff_t)k * ak] * ld(B + (ptrdiff_t)k * ldb + n);
            }
            st(c0, c00);
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
