//go:build cgo

// Fused low-rank adapter products, forward and backward, as ggml custom ops for the
// CPU backend.
//
// A LoRA's products have a rank of 8 or so on one side: each reads or writes a whole
// activation for a few multiply-adds per value, so their cost is passes over memory and
// per-op overhead. Built from generic ops, an adapter is about a dozen nodes (the rank
// padded to 16 for ggml's tiled kernels, the padding's own gradients, out_prod's loops);
// here the forward pass is one pass over x and one write of y, the input gradient one
// pass over g and one write of dx, and the weight gradients one more pass over x and g.
// The forward pass is two ops, so that only A·x, not the adapter's output, stays in
// memory for the backward pass. Every output value is computed by one thread in a
// fixed order, so results do not depend on the number of threads.

#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "lora.h"

static float lora_scale(const struct ggml_tensor * t) {
    float s;
    memcpy(&s, (const char *)t->op_params + ECOTUNE_LORA_SCALE_OFFSET, sizeof s);
    return s;
}

void ecotune_lora_set_scale(struct ggml_tensor * t, float s) {
    memcpy((char *)t->op_params + ECOTUNE_LORA_SCALE_OFFSET, &s, sizeof s);
}

// dots_rows sets out[k] = f·(W_k · v) for kn ≤ 8 rows W_k (n long, ld apart) in one pass
// over v. Inlined with kn = 8, the accumulators stay in registers.
ECOTUNE_INLINE void dots_rows(const int kn, int n, const float * W, size_t ld, const float * v, float f, float * out) {
    vf acc[8] = {{0}};
    int i = 0;
    for (; i + VW <= n; i += VW) {
        const vf x = vld(v + i);
#pragma GCC unroll 8
        for (int k = 0; k < kn; k++) acc[k] += x * vld(W + (size_t)k * ld + i);
    }
    for (int k = 0; k < kn; k++) {
        float s = hsum(acc[k]);
        for (int j = i; j < n; j++) s += v[j] * W[(size_t)k * ld + j];
        out[k] = f * s;
    }
}

// dots sets out[k] = f·(W_k · v) for the r rows W_k of W (n long, ld apart): eight rows
// per pass over v.
static void dots(int r, int n, const float * W, size_t ld, const float * v, float f, float * out) {
    for (int k0 = 0; k0 < r; k0 += 8) {
        if (r - k0 >= 8) dots_rows(8, n, W + (size_t)k0 * ld, ld, v, f, out + k0);
        else dots_rows(r - k0, n, W + (size_t)k0 * ld, ld, v, f, out + k0);
    }
}

// combine sets y = Σ_k c[k]·W_k for the r rows W_k of W (n long, ld apart).
static void combine(int r, int n, const float * W, size_t ld, const float * c, float * y) {
    int i = 0;
    for (; i + 4 * VW <= n; i += 4 * VW) {
        vf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int k = 0; k < r; k++) {
            const float * w = W + (size_t)k * ld + i;
            a0 += c[k] * vld(w); a1 += c[k] * vld(w + VW); a2 += c[k] * vld(w + 2 * VW); a3 += c[k] * vld(w + 3 * VW);
        }
        vst(y + i, a0); vst(y + i + VW, a1); vst(y + i + 2 * VW, a2); vst(y + i + 3 * VW, a3);
    }
    for (; i + VW <= n; i += VW) {
        vf a0 = {0};
        for (int k = 0; k < r; k++) a0 += c[k] * vld(W + (size_t)k * ld + i);
        vst(y + i, a0);
    }
    for (; i < n; i++) {
        float s = 0;
        for (int k = 0; k < r; k++) s += c[k] * W[(size_t)k * ld + i];
        y[i] = s;
    }
}

// transpose returns the r×n matrix of M (n×r, rows r long), allocated.
static float * transpose(const float * M, int n, int r) {
    float * t = malloc(sizeof(float) * (size_t)n * r);
    for (int o = 0; o < n; o++) {
        for (int k = 0; k < r; k++) t[(size_t)k * n + o] = M[(size_t)o * r + k];
    }
    return t;
}


void ecotune_lora_down(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    const struct ggml_tensor * x = dst->src[0], * A = dst->src[1];
    const int in = (int)x->ne[0], N = (int)x->ne[1], r = (int)A->ne[1];
    float * u = dst->data;
    int t0, t1;
    split(N, ith, nth, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        const float * xt = (const float *)((const char *)x->data + (size_t)t * x->nb[1]);
        dots(r, in, A->data, (size_t)in, xt, 1, u + (size_t)t * r);
    }
}

void ecotune_lora_up(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    const struct ggml_tensor * u = dst->src[0], * B = dst->src[1];
    const int N = (int)u->ne[1], r = (int)B->ne[0], out = (int)B->ne[1];
    const float s = lora_scale(dst);
    float * y = dst->data;
    int t0, t1;
    split(N, ith, nth, &t0, &t1);
    if (t0 == t1) return;
    float * Bt = transpose(B->data, out, r); // rows of B's columns: y_t = Σ_k s·u_k·Bt_k
    float * su = malloc(sizeof(float) * (size_t)r);
    for (int t = t0; t < t1; t++) {
        for (int k = 0; k < r; k++) su[k] = s * ((const float *)u->data)[(size_t)t * r + k];
        combine(r, out, Bt, (size_t)out, su, y + (size_t)t * out);
    }
    free(su);
    free(Bt);
}

void ecotune_lora_back_x(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    const struct ggml_tensor * A = dst->src[0], * B = dst->src[1], * g = dst->src[2];
    const int in = (int)A->ne[0], r = (int)A->ne[1], out = (int)B->ne[1], N = (int)g->ne[1];
    const float s = lora_scale(dst);
    float * du = dst->data, * dx = du + (size_t)r * N;
    int t0, t1;
    split(N, ith, nth, &t0, &t1);
    if (t0 == t1) return;
    float * Bt = transpose(B->data, out, r);
    for (int t = t0; t < t1; t++) {
        const float * gt = (const float *)((const char *)g->data + (size_t)t * g->nb[1]);
        dots(r, out, Bt, (size_t)out, gt, s, du + (size_t)t * r);
        combine(r, in, A->data, (size_t)in, du + (size_t)t * r, dx + (size_t)t * in);
    }
    free(Bt);
}

// outer_rows sets acc[k][0:hi-lo] to Σ_t c[t][k]·v_t[lo:hi] for kn ≤ 8 values of k and
// t < N: the rows v_t are vstride bytes apart, c's rows r long. kn by OUTER_NV vectors of
// values at a time, over the whole of t: with kn = 8, 8·OUTER_NV accumulators in registers
// (16 where there are 32 registers).
ECOTUNE_INLINE void outer_rows(const int kn, int r, int N, const float * c, const char * v, size_t vstride,
                               int lo, int w, float * acc) {
    int i = 0;
    for (; i + OUTER_NV * VW <= w; i += OUTER_NV * VW) {
        vf a[8][OUTER_NV] = {{{0}}};
        for (int t = 0; t < N; t++) {
            const float * vt = (const float *)(v + (size_t)t * vstride) + lo + i;
            vf x[OUTER_NV];
#pragma GCC unroll 4
            for (int j = 0; j < OUTER_NV; j++) x[j] = vld(vt + j * VW);
            const float * ct = c + (size_t)t * r;
#pragma GCC unroll 8
            for (int k = 0; k < kn; k++) {
#pragma GCC unroll 4
                for (int j = 0; j < OUTER_NV; j++) a[k][j] += ct[k] * x[j];
            }
        }
#pragma GCC unroll 8
        for (int k = 0; k < kn; k++) {
#pragma GCC unroll 4
            for (int j = 0; j < OUTER_NV; j++) vst(acc + (size_t)k * w + i + j * VW, a[k][j]);
        }
    }
    for (; i < w; i++) {
        float a[8] = {0};
        for (int t = 0; t < N; t++) {
            const float xv = ((const float *)(v + (size_t)t * vstride))[lo + i];
            for (int k = 0; k < kn; k++) a[k] += c[(size_t)t * r + k] * xv;
        }
        for (int k = 0; k < kn; k++) acc[(size_t)k * w + i] = a[k];
    }
}

// outer sets acc[k][0:hi-lo] to Σ_t c[t][k]·v_t[lo:hi] for k < r, t < N, eight k at a time.
static void outer(int r, int N, const float * c, const char * v, size_t vstride, int lo, int hi, float * acc) {
    const int w = hi - lo;
    for (int k0 = 0; k0 < r; k0 += 8) {
        float * ak = acc + (size_t)k0 * w;
        if (r - k0 >= 8) outer_rows(8, r, N, c + k0, v, vstride, lo, w, ak);
        else outer_rows(r - k0, r, N, c + k0, v, vstride, lo, w, ak);
    }
}

void ecotune_lora_back_w(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    const struct ggml_tensor * x = dst->src[0], * down = dst->src[1], * bx = dst->src[2], * g = dst->src[3];
    const int in = (int)x->ne[0], N = (int)x->ne[1], out = (int)g->ne[0], r = (int)dst->src[4]->ne[1];
    const float s = lora_scale(dst);
    const float * u = down->data;
    const float * du = bx->data;
    float * dA = dst->data, * dB = dA + (size_t)in * r;
    // Each thread takes a share of dA's columns and of dB's rows (as many values of
    // each), so no two threads write one value.
    int lo, hi;
    split(in, ith, nth, &lo, &hi);
    if (hi > lo) {
        float * acc = malloc(sizeof(float) * (size_t)r * (hi - lo));
        outer(r, N, du, x->data, x->nb[1], lo, hi, acc);
        for (int k = 0; k < r; k++) memcpy(dA + (size_t)k * in + lo, acc + (size_t)k * (hi - lo), sizeof(float) * (hi - lo));
        free(acc);
    }
    split(out, ith, nth, &lo, &hi);
    if (hi > lo) {
        float * acc = malloc(sizeof(float) * (size_t)r * (hi - lo));
        outer(r, N, u, g->data, g->nb[1], lo, hi, acc);
        for (int o = lo; o < hi; o++) {
            for (int k = 0; k < r; k++) dB[(size_t)o * r + k] = s * acc[(size_t)k * (hi - lo) + (o - lo)];
        }
        free(acc);
    }
}
