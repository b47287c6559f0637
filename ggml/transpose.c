//go:build cgo

// The transposed copy of a quantized weight that the backward pass multiplies by, in one
// pass: ggml's generic ops take three (get_rows dequantizes to F32, cont transposes the F32,
// cpy rounds it to the compute type), each writing the whole matrix in F32 or more. Here a
// band of rows is dequantized into a buffer that stays in cache and written out
// transposed, each output row receiving one cache line of the band at a time.

#include <stdlib.h>

#include "kernels.h"
#include "transpose.h"

void ecotune_dequant_transpose(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    const struct ggml_tensor * a = dst->src[0];
    const int in = (int)a->ne[0], out = (int)a->ne[1];
    const ggml_to_float_t to_float = ggml_get_type_traits(a->type)->to_float;
    // One band is as many source rows as a cache line holds output values.
    const int band = (int)(64 / ggml_type_size(dst->type));
    int b0, b1;
    split((out + band - 1) / band, ith, nth, &b0, &b1);
    if (b0 == b1) return;
    float * buf = malloc(sizeof(float) * (size_t)band * in);
    float col[64];
    for (int b = b0; b < b1; b++) {
        const int r0 = b * band, nr = imin(band, out - r0);
        for (int r = 0; r < nr; r++) {
            to_float((const char *)a->data + (size_t)(r0 + r) * a->nb[1], buf + (size_t)r * in, in);
        }
        for (int c = 0; c < in; c++) {
            char * row = (char *)dst->data + (size_t)c * dst->nb[1];
            for (int r = 0; r < nr; r++) col[r] = buf[(size_t)r * in + c];
            switch (dst->type) {
            case GGML_TYPE_BF16:
                ggml_fp32_to_bf16_row(col, (ggml_bf16_t *)row + r0, nr);
                break;
            case GGML_TYPE_F16:
                ggml_fp32_to_fp16_row(col, (ggml_fp16_t *)row + r0, nr);
                break;
            default:
                memcpy((float *)row + r0, col, sizeof(float) * nr);
            }
        }
    }
    free(buf);
}
