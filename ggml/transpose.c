//go:build cgo

// The transposed copy of a quantized weight that the backward pass multiplies by, in one
// pass: ggml's generic ops take three (get_rows dequantizes to F32, cont transposes the F32,
// cpy rounds it to the compute type), each writing the whole matrix in F32 or more. Here a
// band of rows is dequantized into a buffer that stays in cache and written out
// transposed, each output row receiving one cache line of the band at a time.

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-backend.h"
#include "half.h"
#include "transpose.h"

// llama.cpp's CPU backend keeps a Q4_K weight it repacks (buffer type CPU_REPACK, for its
// faster products; on x86 with AVX2 that is q4_K_8x8) as groups of 8 rows, each super-block
// of the group's rows one block_q4_Kx8: the 8 rows' d, then their dmin, then for each
// sub-block its 8 rows' (scale, min) pairs packed as a Q4_K block packs a row's 8
// sub-blocks (row for sub-block), then the rows' quants interleaved 8 bytes at a time.
// The layouts are restated here by size, with ggml's own dequantization run on each row's
// block put back together, so the values are ggml's to the bit.
enum { QK4K = 256, Q4K_SCALES = 12, Q4K_BLOCK = 4 + Q4K_SCALES + QK4K / 2, Q4KX8_BLOCK = 8 * Q4K_BLOCK };

// is_repacked_q4_K reports whether a's data has the repacked layout.
static int is_repacked_q4_K(const struct ggml_tensor * a) {
    return a->type == GGML_TYPE_Q4_K && a->buffer != NULL &&
           strcmp(ggml_backend_buffer_name(a->buffer), "CPU_REPACK") == 0;
}

// scale_min reads the 6-bit pair j of a Q4_K scales array (ggml's get_scale_min_k4).
static void scale_min(int j, const uint8_t * q, uint8_t * s, uint8_t * m) {
    if (j < 4) {
        *s = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *s = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// unpack_q4_Kx8 writes row r's block of one block_q4_Kx8 as a plain block_q4_K.
static void unpack_q4_Kx8(const uint8_t * x8, int r, uint8_t * out) {
    memcpy(out, x8 + 2 * r, 2);          // d
    memcpy(out + 2, x8 + 16 + 2 * r, 2); // dmin
    const uint8_t * packed = x8 + 32;
    uint8_t s[8], m[8];
    for (int sb = 0; sb < 8; sb++) scale_min(r, packed + sb * Q4K_SCALES, &s[sb], &m[sb]);
    uint8_t * sc = out + 4;
    for (int j = 0; j < 4; j++) {
        sc[j] = (uint8_t)((s[j] & 63) | ((s[j + 4] >> 4) << 6));
        sc[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        sc[j + 8] = (uint8_t)((s[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
    const uint8_t * qs = x8 + 32 + 8 * Q4K_SCALES;
    for (int k = 0; k < QK4K / 2 / 8; k++) memcpy(out + 4 + Q4K_SCALES + 8 * k, qs + 8 * (8 * k + r), 8);
}

// dequant_row writes row i of a [in, out] as floats.
static void dequant_row(const struct ggml_tensor * a, int repacked, ggml_to_float_t to_float, int i, float * y) {
    const int in = (int)a->ne[0];
    if (!repacked) {
        to_float((const char *)a->data + (size_t)i * a->nb[1], y, in);
        return;
    }
    const int nb = in / QK4K;
    const uint8_t * group = (const uint8_t *)a->data + (size_t)(i / 8) * nb * Q4KX8_BLOCK;
    uint8_t block[Q4K_BLOCK];
    for (int x = 0; x < nb; x++) {
        unpack_q4_Kx8(group + (size_t)x * Q4KX8_BLOCK, i % 8, block);
        to_float(block, y + x * QK4K, QK4K);
    }
}

void ecotune_dequant_transpose(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    // A repacked weight comes as userdata (see ops_dequant_transpose.go).
    const struct ggml_tensor * a = dst->src[0] != NULL ? dst->src[0] : (const struct ggml_tensor *)userdata;
    const int in = (int)a->ne[0], out = (int)a->ne[1];
    const ggml_to_float_t to_float = ggml_get_type_traits(a->type)->to_float;
    const int repacked = is_repacked_q4_K(a);
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
        for (int r = 0; r < nr; r++) dequant_row(a, repacked, to_float, r0 + r, buf + (size_t)r * ld);
        for (int c = 0; c < in; c++) {
            char * row = (char *)dst->data + (size_t)c * dst->nb[1];
            for (int r = 0; r < nr; r++) col[r] = buf[(size_t)r * ld + c];
            switch (dst->type) {
            case GGML_TYPE_BF16:
            case GGML_TYPE_F16: {
                const int f16 = dst->type == GGML_TYPE_F16;
                uint16_t * out = (uint16_t *)row + r0;
                if (nr % VW == 0) {
                    for (int i = 0; i < nr; i += VW) {
                        const vh h = f16 ? f16_round(vld(col + i)) : bf16_round(vld(col + i));
                        memcpy(out + i, &h, sizeof h);
                    }
                } else if (f16) {
                    ggml_fp32_to_fp16_row(col, (ggml_fp16_t *)out, nr);
                } else {
                    ggml_fp32_to_bf16_row(col, (ggml_bf16_t *)out, nr);
                }
                break;
            }
            default:
                memcpy((float *)row + r0, col, sizeof(float) * nr);
            }
        }
    }
    free(buf);
}
