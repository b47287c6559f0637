package bindings

/*
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"
)

// Batch is a set of tokens to decode together, the owner of a llama_batch. Each token has
// a position, one or more sequence ids and a flag saying whether Decode should compute its
// logits. A Batch is reusable (Clear) and not safe for concurrent use; Close frees it.
type Batch struct {
	c        C.struct_llama_batch
	capacity int
	seqMax   int
	closed   bool
}

// NewBatch allocates a batch of up to capacity tokens, each in up to seqMax sequences
// (at least 1). The caller owns it and must Close it.
func NewBatch(capacity, seqMax int) (*Batch, error) {
	if capacity <= 0 || capacity > math.MaxInt32 {
		return nil, fmt.Errorf("bindings: batch capacity %d must be in [1, %d]", capacity, math.MaxInt32)
	}
	seqMax = max(seqMax, 1)
	if seqMax > int(C.llama_max_parallel_sequences()) {
		return nil, fmt.Errorf("bindings: batch seqMax %d exceeds llama.cpp's limit %d", seqMax, int(C.llama_max_parallel_sequences()))
	}
	b := &Batch{
		c:        C.llama_batch_init(C.int32_t(capacity), 0, C.int32_t(seqMax)),
		capacity: capacity,
		seqMax:   seqMax,
	}
	b.c.n_tokens = 0 // llama_batch_init leaves the arrays uninitialized but n_tokens at 0
	return b, nil
}

// Close frees the batch. It is idempotent and safe on a nil *Batch.
func (b *Batch) Close() error {
	if b == nil || b.closed {
		return nil
	}
	C.llama_batch_free(b.c)
	b.c = C.struct_llama_batch{}
	b.closed = true
	return nil
}

// Len returns the number of tokens added since the last Clear (0 after Close).
func (b *Batch) Len() int {
	if b == nil || b.closed {
		return 0
	}
	return int(b.c.n_tokens)
}

// Cap returns the number of tokens the batch can hold.
func (b *Batch) Cap() int {
	if b == nil {
		return 0
	}
	return b.capacity
}

// Clear empties the batch for reuse.
func (b *Batch) Clear() error {
	if b == nil || b.closed {
		return ErrClosed
	}
	b.c.n_tokens = 0
	return nil
}

// Add appends token at position pos in the sequences seqIDs (1 to the batch's seqMax
// ids); logits asks Decode to compute this token's output, read back with
// Context.Logits at this token's index in the batch.
func (b *Batch) Add(token, pos int32, seqIDs []int32, logits bool) error {
	if b == nil || b.closed {
		return ErrClosed
	}
	n := int(b.c.n_tokens)
	if n >= b.capacity {
		return fmt.Errorf("bindings: batch is full (%d tokens)", b.capacity)
	}
	if len(seqIDs) == 0 || len(seqIDs) > b.seqMax {
		return fmt.Errorf("bindings: a token needs 1 to %d sequence ids, got %d", b.seqMax, len(seqIDs))
	}
	unsafe.Slice(b.c.token, b.capacity)[n] = C.llama_token(token)
	unsafe.Slice(b.c.pos, b.capacity)[n] = C.llama_pos(pos)
	unsafe.Slice(b.c.n_seq_id, b.capacity)[n] = C.int32_t(len(seqIDs))
	seqs := unsafe.Slice(unsafe.Slice(b.c.seq_id, b.capacity)[n], b.seqMax)
	for i, s := range seqIDs {
		seqs[i] = C.llama_seq_id(s)
	}
	unsafe.Slice(b.c.logits, b.capacity)[n] = cFlag(logits)
	b.c.n_tokens++
	return nil
}

// SetLogits changes whether Decode computes the output of the token at index i.
func (b *Batch) SetLogits(i int, logits bool) error {
	if b == nil || b.closed {
		return ErrClosed
	}
	if i < 0 || i >= int(b.c.n_tokens) {
		return fmt.Errorf("bindings: batch index %d out of range [0, %d)", i, b.c.n_tokens)
	}
	unsafe.Slice(b.c.logits, b.capacity)[i] = cFlag(logits)
	return nil
}

// cFlag converts a bool to llama_batch's int8 flag.
func cFlag(v bool) C.int8_t {
	if v {
		return 1
	}
	return 0
}

// batchView is a Go view of a batch's filled part, for validation before Decode.
type batchView struct {
	tokens []C.llama_token
	nSeq   []C.int32_t
	seqIDs []*C.llama_seq_id
	logits []C.int8_t
}

// view returns the filled part of the batch as Go slices over its C arrays.
func (b *Batch) view() batchView {
	n := int(b.c.n_tokens)
	return batchView{
		tokens: unsafe.Slice(b.c.token, n),
		nSeq:   unsafe.Slice(b.c.n_seq_id, n),
		seqIDs: unsafe.Slice(b.c.seq_id, n),
		logits: unsafe.Slice(b.c.logits, n),
	}
}
