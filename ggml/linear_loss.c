//go:build cgo

// The output layer's product and the cross-entropy after it, taken a chunk of the
// vocabulary at a time, so that neither the logits [V, K] nor their gradient nor a
// transposed copy of the whole output matrix is ever held (Liger's and Unsloth's fused
// linear cross-entropy, with an online softmax in place of their second pass).
//
// For each chunk c of vocabulary rows, ggml's own products give the chunk's logits
// z_c = W_cᵀ·h; ecotune_lce_state folds them into each column's running maximum m and
// sum S of e^(z-m) (rescaling the sum by α = e^(m_before - m) when the maximum grows),
// as flash attention does over keys. For a training step the chunk also adds to the
// input gradient: the gradient of the mean loss with respect to h is
//
//     g/K · Σ_v W_v·(p_v - [v = target]) = g/K · (Σ_{v≠t} W_v·e^(z_v-m) / S + W_t·(p_t - 1))
//
// so ecotune_lce_probs writes e^(z-m) with the target's entry left out, a product with
// the chunk's transposed weights sums those rows, and ecotune_lce_acc rescales the running
// sum by α and adds it. The target's own term is kept apart and computed once S is known,
// in F32 from p_t - 1, so that a confident prediction (p_t near 1) loses nothing to the
// cancellation of two nearly equal terms, nor to the rounding of the product's inputs
// (BF16 for a quantized base). Every column is computed by one thread, so results do not
// depend on the number of threads.

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "linear_loss.h"

#define COL(t, k) ((const float *)((const char *)(t)->data + (size_t)(k) * (t)->nb[1]))

void ecotune_lce_state(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    const int v0 = (int)(intptr_t)userdata;
    const int has_prev = dst->src[2] != NULL;
    const struct ggml_tensor * prev = has_prev ? dst->src[0] : NULL;
    const struct ggml_tensor * z = dst->src[has_prev], * targets = dst->src[has_prev + 1];
    const int n = (int)z->ne[0], K = (int)z->ne[1];
    const int32_t * tg = targets->data;
    const float * pv = prev ? prev->data : NULL;
    float * st = dst->data;
    int k0, k1;
    split(K, ith, nth, &k0, &k1);
    for (int k = k0; k < k1; k++) {
        const float * x = COL(z, k);
        const float m = row_max(x, n, pv ? pv[k] : -INFINITY);
        const float s = sum_exp(x, n, m);
        const float a = pv ? expf(pv[k] - m) : 0;
        const int y = tg[k] - v0;
        st[k] = m;
        st[K + k] = (pv ? pv[K + k] * a : 0) + s;
        st[2 * K + k] = y >= 0 && y < n ? x[y] : (pv ? pv[2 * K + k] : 0);
        st[3 * K + k] = a;
    }
}

void ecotune_lce_probs(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    const int v0 = (int)(intptr_t)userdata;
    const struct ggml_tensor * z = dst->src[0], * state = dst->src[1], * targets = dst->src[2];
    const int n = (int)z->ne[0], K = (int)z->ne[1];
    const int32_t * tg = targets->data;
    const float * st = state->data;
    int k0, k1;
    split(K, ith, nth, &k0, &k1);
    for (int k = k0; k < k1; k++) {
        const float * x = COL(z, k);
        float * p = (float *)((char *)dst->data + (size_t)k * dst->nb[1]);
        const float m = st[k];
        int i = 0;
        for (; i + VW <= n; i += VW) vst(p + i, vexp(vld(x + i) - m));
        for (; i < n; i++) p[i] = expf(x[i] - m);
        const int y = tg[k] - v0;
        if (y >= 0 && y < n) p[y] = 0;
    }
}

void ecotune_lce_acc(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    const struct ggml_tensor * acc = dst->src[0], * u = dst->src[1], * state = dst->src[2];
    const int E = (int)dst->ne[0], K = (int)dst->ne[1];
    const float * alpha = (const float *)state->data + 3 * K;
    int k0, k1;
    split(K, ith, nth, &k0, &k1);
    for (int k = k0; k < k1; k++) {
        const float * a = COL(acc, k), * b = COL(u, k);
        float * d = (float *)((char *)dst->data + (size_t)k * dst->nb[1]);
        const float f = alpha[k];
        int i = 0;
        for (; i + VW <= E; i += VW) vst(d + i, vld(a + i) * f + vld(b + i));
        for (; i < E; i++) d[i] = a[i] * f + b[i];
    }
}

void ecotune_lce_loss(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    const struct ggml_tensor * state = dst->src[1] != NULL ? dst->src[1] : dst->src[0];
    const int K = (int)dst->ne[0];
    const float * st = state->data;
    float * loss = dst->data, * l = loss + K;
    int k0, k1;
    split(K, ith, nth, &k0, &k1);
    for (int k = k0; k < k1; k++) {
        l[k] = st[k] + logf(st[K + k]);
        loss[k] = l[k] - st[2 * K + k];
    }
}

void ecotune_lce_back(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    const struct ggml_tensor * acc = dst->src[0], * state = dst->src[1], * wt = dst->src[2], * grad = dst->src[3];
    const int E = (int)dst->ne[0], K = (int)dst->ne[1];
    const float * st = state->data;
    const float f = *(const float *)grad->data / K;
    int k0, k1;
    split(K, ith, nth, &k0, &k1);
    for (int k = k0; k < k1; k++) {
        const float * a = COL(acc, k), * w = COL(wt, k);
        float * d = (float *)((char *)dst->data + (size_t)k * dst->nb[1]);
        const float lse = st[k] + logf(st[K + k]);
        const float fa = f / st[K + k];
        const float fw = f * (expf(st[2 * K + k] - lse) - 1);
        int i = 0;
        for (; i + VW <= E; i += VW) vst(d + i, vld(a + i) * fa + vld(w + i) * fw);
        for (; i < E; i++) d[i] = a[i] * fa + w[i] * fw;
    }
}
