// Fused low-rank adapter products for the CPU backend: ggml custom ops (see lora.c).
#ifndef ECOTUNE_LORA_H
#define ECOTUNE_LORA_H

#include "ggml.h"

// The scale s is stored in a custom op's op_params after ggml's own
// struct ggml_custom_op_params (which ggml reads; it leaves the rest alone).
#define ECOTUNE_LORA_SCALE_OFFSET 32

void ecotune_lora_set_scale(struct ggml_tensor * t, float s);

// Forward, down: src x [in, N] (rows contiguous) and A [in, r]; dst F32 u = A·x [r, N].
void ecotune_lora_down(struct ggml_tensor * dst, int ith, int nth, void * userdata);

// Forward, up: src u and B [r, out]; dst F32 y = s·B·u [out, N].
void ecotune_lora_up(struct ggml_tensor * dst, int ith, int nth, void * userdata);

// Backward of the input: src A, B and the gradient g of y [out, N]; dst F32:
// du = s·Bᵀg [r, N], then dx = Aᵀdu [in, N].
void ecotune_lora_back_x(struct ggml_tensor * dst, int ith, int nth, void * userdata);

// Backward of the weights: src x, u, back_x's dst, g and A; dst F32:
// dA = du·xᵀ [in, r], then dB = s·g·uᵀ [r, out].
void ecotune_lora_back_w(struct ggml_tensor * dst, int ith, int nth, void * userdata);

#endif
