// Rounding floats to 16-bit types a vector at a time, and the F16 products' per-column
// power-of-two scaling: ggml custom ops (see half.c).
#ifndef ECOTUNE_HALF_H
#define ECOTUNE_HALF_H

#include <stdint.h>
#include <string.h>

#include "ggml.h"
#include "kernels.h"

#if defined(__AVX512F__) || defined(__F16C__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

// vh is VW 16-bit values (F16 or BF16 bits), vu VW 32-bit ones.
typedef uint16_t vh __attribute__((vector_size(VW * 2)));
typedef uint32_t vu __attribute__((vector_size(VW * 4)));

// bf16_round rounds VW floats to BF16 as ggml's GGML_FP32_TO_BF16 does, with the same
// bits: to nearest, ties to even, a NaN made quiet. (ggml_fp32_to_bf16_row does it one
// value at a time unless ggml itself was built for AVX512-BF16, at about a nanosecond a
// value: more than a dequantization and a transposition together.)
ECOTUNE_INLINE vh bf16_round(vf x) {
    vu u;
    memcpy(&u, &x, sizeof u);
    const vu nan = (vu)((u & 0x7fffffffu) > 0x7f800000u);
    const vu r = ((u + (0x7fffu + ((u >> 16) & 1u))) >> 16 & ~nan) | (((u >> 16) | 64u) & nan);
    return __builtin_convertvector(r, vh);
}

// f16_round rounds VW floats to F16, to nearest with ties to even: the bits of ggml's
// CPU conversion (F16C's or NEON's instruction, or its software rounding elsewhere).
// ggml_fp32_to_fp16_row, which ggml-base exports, converts one value at a time.
ECOTUNE_INLINE vh f16_round(vf x) {
    vh r;
#if defined(__AVX512F__)
    const __m256i h = _mm512_cvtps_ph((__m512)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    memcpy(&r, &h, sizeof r);
#elif defined(__F16C__) && VW == 8
    const __m128i h = _mm256_cvtps_ph((__m256)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    memcpy(&r, &h, sizeof r);
#elif defined(__aarch64__) && VW == 4
    const float16x4_t h = vcvt_f16_f32((float32x4_t)x);
    memcpy(&r, &h, sizeof r);
#else
    float v[VW];
    ggml_fp16_t h[VW];
    memcpy(v, &x, sizeof v);
    ggml_fp32_to_fp16_row(v, h, VW);
    memcpy(&r, h, sizeof r);
#endif
    return r;
}

// ecotune_half_scaled: src x F32 [k, rows...] (nb[0] = 4) to dst F16 of x's shape,
// contiguous, each row of k values multiplied by 2^e, the power of two that puts its
// largest magnitude in [2^14, 2^15), then rounded to F16. ecotune_half_unscale: src p
// F32 (a product by the scaled rows: one row of p for each row of x, contiguous) and x;
// dst F32 of p's shape, each row of p multiplied by 2^-e of x's row.
void ecotune_half_scaled(struct ggml_tensor * dst, int ith, int nth, void * userdata);
void ecotune_half_unscale(struct ggml_tensor * dst, int ith, int nth, void * userdata);

#endif
