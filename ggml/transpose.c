//go:build cgo

// The transposed copy of a quantized weight that the backward pass multiplies by, in one
// pass: ggml's generic ops take three (get_rows dequantizes to F32, cont transposes the F32,
// cpy rounds it to the compute type), each writing the whole matrix in F32 or more. Here a
// band of rows is dequantized into a buffer that stays in cache and written out
// transposed, each output row receiving one cache line of the band at a time.

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "transpose.h"

typedef uint32_t vu __attribute__((vector_size(VW * 4)));
typedef uint16_t vh __attribute__((vector_size(VW * 2)));

// bf16_round rounds VW floats to BF16 as ggml's GGML_FP32_TO_BF16 does, with the same
// bits: to nearest, ties to even, a NaN made quiet. (ggml_fp32_to_bf16_row does it one
// value at a time unless ggml itself was built for AVX512-BF16, at about a nanosecond a
// value: more than the dequantization and the transposition together.)
ECOTUNE_INLINE vh bf16_round(vf x) {
    vu u;
    memcpy(&u, &x, sizeof u);
    const vu nan = (vu)((u & 0x7fffffffu) > 0x7f800000u);
    const vu r = ((u + (0x7fffu + ((u >> 16) & 1u))) >> 16 & ~nan) | (((u >> 16) | 64u) & nan);
    return __builtin_convertvector(r, vh);
}

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
    // The band's rows lie ld floats apart, one cache line more than a row: at a row
    // length of a multiple of 1,024 floats (3,072, 8,192) the lines a column reads would
    // otherwise all fall in one set of the L1 cache, which holds eight of them, and every
    // read of the gather below would miss it.
    const size_t ld = (size_t)in + 16;
    float * buf = malloc(sizeof(float) * (size_t)band * ld);
    float col[64];
    for (int b = b0; b < b1; b++) {
        const int r0 = b * band, nr = imin(band, out - r0);
        for (int r = 0; r < nr; r++) {
            to_float((const char *)a->data + (size_t)(r0 + r) * a->nb[1], buf + (size_t)r * ld, in);
        }
        for (int c = 0; c < in; c++) {
            char * row = (char *)dst->data + (size_t)c * dst->nb[1];
            for (int r = 0; r < nr; r++) col[r] = buf[(size_t)r * ld + c];
            switch (dst->type) {
            case GGML_TYPE_BF16:
                if (nr % VW == 0) {
                    for (int i = 0; i < nr; i += VW) {
                        const vh h = bf16_round(vld(col + i));
                        memcpy((ggml_bf16_t *)row + r0 + i, &h, sizeof h);
                    }
                } else {
                    ggml_fp32_to_bf16_row(col, (ggml_bf16_t *)row + r0, nr);
                }
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
