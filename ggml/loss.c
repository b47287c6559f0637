//go:build cgo

// Fused cross-entropy over class indices, forward and backward, as ggml custom ops for
// the CPU backend.
//
// ggml's cross-entropy takes one-hot label rows as large as the logits ([vocab, K]:
// 65 MB for 512 targets over 32,000 tokens), which must be written before every step,
// and its CPU kernels walk each row several times with scalar exponentials. Here the
// labels are K class indices; the forward pass keeps each row's log-sum-exp, so the
// backward pass is one read and one write per logit. Rows are split between threads,
// each row computed by one, so results do not depend on the number of threads.

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "loss.h"

// lse returns log Σ e^x over the n values of x.
static float lse(const float * x, int n) {
    const float m = row_max(x, n, -INFINITY);
    return m + logf(sum_exp(x, n, m));
}

void ecotune_ce_fwd(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    const struct ggml_tensor * logits = dst->src[0], * targets = dst->src[1];
    const int V = (int)logits->ne[0], K = (int)logits->ne[1];
    const int32_t * tg = targets->data;
    float * loss = dst->data, * l = loss + K;
    int k0, k1;
    split(K, ith, nth, &k0, &k1);
    for (int k = k0; k < k1; k++) {
        const float * x = (const float *)((const char *)logits->data + (size_t)k * logits->nb[1]);
        l[k] = lse(x, V);
        loss[k] = l[k] - x[tg[k]];
    }
}

void ecotune_ce_back(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    const struct ggml_tensor * logits = dst->src[0], * targets = dst->src[1], * fwd = dst->src[2], * grad = dst->src[3];
    const int V = (int)logits->ne[0], K = (int)logits->ne[1];
    const int32_t * tg = targets->data;
    const float * l = (const float *)fwd->data + K;
    const float f = *(const float *)grad->data / K;
    int k0, k1;
    split(K, ith, nth, &k0, &k1);
    for (int k = k0; k < k1; k++) {
        const float * x = (const float *)((const char *)logits->data + (size_t)k * logits->nb[1]);
        float * d = (float *)((char *)dst->data + (size_t)k * dst->nb[1]);
        int i = 0;
        for (; i + VW <= V; i += VW) vst(d + i, vexp(vld(x + i) - l[k]) * f);
        for (; i < V; i++) d[i] = expf(x[i] - l[k]) * f;
        d[tg[k]] -= f;
    }
}
