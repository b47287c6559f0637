// A quantized weight's transposed, dequantized copy for the CPU backend: a ggml custom
// op (see transpose.c).
#ifndef ECOTUNE_TRANSPOSE_H
#define ECOTUNE_TRANSPOSE_H

#include "ggml.h"

// src a [in, out] of any type with to_float (rows contiguous), or with no source a as
// userdata (a weight in the CPU backend's repacking buffer); dst [out, in] of F32, F16 or
// BF16, contiguous: dst[c][r] = a[r][c], dequantized and rounded to dst's type.
void ecotune_dequant_transpose(struct ggml_tensor * dst, int ith, int nth, void * userdata);

#endif
