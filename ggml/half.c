//go:build cgo

// F16 products with the CPU: ggml rounds a product's F32 operand to F16 before it
// multiplies by an F16 matrix. Gradients are small (a mean over hundreds of tokens, then
// each layer's scales), and F16 keeps 11 bits only above 2^-14 (6.1e-5): below it a
// value loses a bit per halving, and below 2^-24 it is gone. Scaling each row of the
// operand by a power of two, so that its largest value sits just under F16's top, keeps
// 11 bits for every value within 2^28 of the row's largest, and the power of two is
// exact in both directions: the product carries F16's rounding of the weights and of
// the operand, each 2^-11 relative at most, whatever the gradients' size.

#include <math.h>

#include "half.h"

// row_exponent returns e with the largest magnitude of the n floats at x times 2^e in
// [2^14, 2^15): 0 for a row of zeros or one holding an infinity or NaN (which then
// stays what it is), and within ±64 (a row below 2^-50 keeps fewer bits; its values
// are far below anything the F32 computation would see as more than noise).
static int row_exponent(const float * x, int n) {
    float m = 0;
    for (int i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        m = a > m ? a : m;
        if (!(a <= INFINITY)) return 0; // NaN
    }
    if (m == 0 || isinf(m)) return 0;
    int k;
    frexpf(m, &k); // m = f·2^k, f in [0.5, 1)
    return imax(-64, imin(64, 15 - k));
}

// n_rows returns the number of rows of t (all but its first dimension), row_at the
// address of row r.
static int64_t n_rows(const struct ggml_tensor * t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

static const char * row_at(const struct ggml_tensor * t, int64_t r) {
    const int64_t i1 = r % t->ne[1], i2 = r / t->ne[1] % t->ne[2], i3 = r / t->ne[1] / t->ne[2];
    return (const char *)t->data + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
}

void ecotune_half_scaled(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    const struct ggml_tensor * x = dst->src[0];
    const int k = (int)x->ne[0];
    int r0, r1;
    split((int)n_rows(x), ith, nth, &r0, &r1);
    for (int r = r0; r < r1; r++) {
        const float * src = (const float *)row_at(x, r);
        ggml_fp16_t * out = (ggml_fp16_t *)((char *)dst->data + (size_t)r * dst->nb[1]);
        const float s = ldexpf(1, row_exponent(src, k));
        int i = 0;
        for (; i + VW <= k; i += VW) {
            const vh h = f16_round(vld(src + i) * s);
            memcpy(out + i, &h, sizeof h);
        }
        for (; i < k; i++) out[i] = ggml_fp32_to_fp16(src[i] * s);
    }
}

void ecotune_half_unscale(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    const struct ggml_tensor * p = dst->src[0], * x = dst->src[1];
    const int n = (int)p->ne[0], k = (int)x->ne[0];
    int r0, r1;
    split((int)n_rows(p), ith, nth, &r0, &r1);
    for (int r = r0; r < r1; r++) {
        const float s = ldexpf(1, -row_exponent((const float *)row_at(x, r), k));
        const float * src = (const float *)((const char *)p->data + (size_t)r * p->nb[1]);
        float * out = (float *)((char *)dst->data + (size_t)r * dst->nb[1]);
        int i = 0;
        for (; i + VW <= n; i += VW) vst(out + i, vld(src + i) * s);
        for (; i < n; i++) out[i] = src[i] * s;
    }
}
