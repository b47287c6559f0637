// Fused causal attention for the CPU backend: ggml custom ops (see attention.c).
#ifndef ECOTUNE_ATTENTION_H
#define ECOTUNE_ATTENTION_H

#include <stdint.h>
#include "ggml.h"

// ecotune_attn_params are stored in a custom op's op_params after ggml's own
// struct ggml_custom_op_params (which ggml reads; it leaves the rest alone).
struct ecotune_attn_params {
    float   scale;   // multiplies the (soft-capped) score
    float   pre;     // multiplies q·k before the soft cap
    float   softcap; // > 0: score = softcap·tanh(pre·q·k/softcap)
    int32_t window;  // > 0: query i sees keys i-window < j <= i
    int32_t starts;  // >= 0: index of the src holding each query's first visible key
                     // (I32 [T, B], non-decreasing along a sequence, starts[i] <= i)
};

#define ECOTUNE_ATTN_PARAMS_OFFSET 32
#define ECOTUNE_ATTN_BLOCK 64

void ecotune_attn_set_params(struct ggml_tensor * t, struct ecotune_attn_params p);

// Forward: src q [hd, H, T, B], k and v [hd, KV, T, B]; dst F32, hd·H·T·B outputs
// (laid out [hd, H, T, B]) then H·T·B log-sum-exps (laid out [H, T, B]).
void ecotune_attn_fwd(struct ggml_tensor * dst, int ith, int nth, void * userdata);

// Backward, first half: src q, k, v, the forward's dst and the outputs' gradient
// [hd·H, T·B]; dst F32: dk [hd, KV, T, B], dv (same), then, if dst is that long, the
// score gradients of every visible block (ecotune_attn_scores_size).
void ecotune_attn_back_kv(struct ggml_tensor * dst, int ith, int nth, void * userdata);

// Backward, second half; dst dq [hd, H, T, B]. src k and back_kv's dst (holding the
// score gradients), or src q, k, v, the forward's dst and the outputs' gradient, as
// back_kv's: then it computes the score gradients again (two more block products per
// visible block, no T×T memory).
void ecotune_attn_back_q(struct ggml_tensor * dst, int ith, int nth, void * userdata);

// Floats back_kv keeps for the score gradients of H heads of B sequences of T tokens.
int64_t ecotune_attn_scores_size(int64_t H, int64_t T, int64_t B);

#endif
