// The output layer and cross-entropy in vocabulary chunks, for the CPU backend: ggml
// custom ops (see linear_loss.c and ops_linear_loss.go).
#ifndef ECOTUNE_LINEAR_LOSS_H
#define ECOTUNE_LINEAR_LOSS_H

#include "ggml.h"

// State after a chunk: dst F32 [K, 4], four rows of K values: the running maximum m of
// each column's logits so far, the sum S of their e^(z-m), the target's logit (once its
// chunk has passed) and α = e^(m_before - m), the factor the chunk rescales the earlier
// sums by. src: [prev state,] z [n, K] (the chunk's logits, rows contiguous), targets I32
// [K]; userdata is the chunk's first vocabulary row.
void ecotune_lce_state(struct ggml_tensor * dst, int ith, int nth, void * userdata);

// The chunk's unnormalised probabilities: dst F32 [n, K] = e^(z - m), 0 at the target's
// row. src: z, the state after the chunk, targets; userdata as for the state.
void ecotune_lce_probs(struct ggml_tensor * dst, int ith, int nth, void * userdata);

// dst F32 [E, K] = acc·α + u, column by column. src: acc [E, K], u [E, K] (the chunk's
// weights times its probabilities), the state after the chunk.
void ecotune_lce_acc(struct ggml_tensor * dst, int ith, int nth, void * userdata);

// dst F32 [K, 2]: each column's loss m + log S - z_target, then its log-sum-exp. src:
// [anything,] the last state (a first source only orders the graph: see
// ops_linear_loss.go).
void ecotune_lce_loss(struct ggml_tensor * dst, int ith, int nth, void * userdata);

// The gradient of the hidden states: dst F32 [E, K] = g/K·(acc/S + w_target·(p_target -
// 1)). src: acc [E, K] (Σ over non-target rows v of W_v·e^(z_v - m)), the last state,
// w_target [E, K] (each column's target row of W, F32), g [1] (the mean loss's gradient).
void ecotune_lce_back(struct ggml_tensor * dst, int ith, int nth, void * userdata);

#endif
