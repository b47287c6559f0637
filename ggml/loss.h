// Fused cross-entropy over class indices for the CPU backend: ggml custom ops (loss.c).
#ifndef ECOTUNE_LOSS_H
#define ECOTUNE_LOSS_H

#include "ggml.h"

// Forward: src logits [V, K] (rows contiguous) and targets I32 [K]; dst F32 [K, 2]: each
// row's loss -log softmax(row)[target], then each row's log-sum-exp.
void ecotune_ce_fwd(struct ggml_tensor * dst, int ith, int nth, void * userdata);

// Backward: src logits, targets, the forward's dst and the mean loss's gradient [1];
// dst F32 [V, K]: (softmax(row) - onehot(target))·grad/K.
void ecotune_ce_back(struct ggml_tensor * dst, int ith, int nth, void * userdata);

#endif
