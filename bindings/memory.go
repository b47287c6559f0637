package bindings

/*
#include "llama.h"
*/
import "C"

import "fmt"

// checkSeq validates a sequence id before it reaches llama.cpp's memory, which asserts
// (aborting the process) on ids beyond NSeqMax. anyOK admits -1, "every sequence".
func (c *Context) checkSeq(seq int32, anyOK bool) error {
	if anyOK && seq == -1 {
		return nil
	}
	if seq < 0 || int(seq) >= c.nSeqMax {
		return fmt.Errorf("bindings: sequence id %d outside [0, %d); raise ContextOptions.NSeqMax", seq, c.nSeqMax)
	}
	return nil
}

// ClearMemory empties the KV memory of every sequence.
func (c *Context) ClearMemory() error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	C.llama_memory_clear(C.llama_get_memory(c.ptr), true)
	c.outputs, c.nOutputs = c.outputs[:0], 0
	return nil
}

// SeqRemove drops the tokens of sequence seq (-1: every sequence) at positions in
// [p0, p1); p0 < 0 means from 0, p1 < 0 means to the end. It returns ErrPartialRemove
// when the memory cannot drop part of a sequence.
func (c *Context) SeqRemove(seq, p0, p1 int32) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq, true); err != nil {
		return err
	}
	if !C.llama_memory_seq_rm(C.llama_get_memory(c.ptr), C.llama_seq_id(seq), C.llama_pos(p0), C.llama_pos(p1)) {
		return ErrPartialRemove
	}
	return nil
}

// SeqCopy makes the tokens of sequence src at positions [p0, p1) also belong to dst, so
// both share a prefix without recomputing it (negative bounds as in SeqRemove). In a
// context with one memory stream per sequence (KVUnified false, NSeqMax > 1) only whole
// sequences can be copied (p0 ≤ 0 and p1 < 0): llama.cpp then copies the stream's buffer.
func (c *Context) SeqCopy(src, dst, p0, p1 int32) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(src, false); err != nil {
		return err
	}
	if err := c.checkSeq(dst, false); err != nil {
		return err
	}
	// llama.cpp asserts on a partial copy between streams; refuse it here.
	if !c.kvUnified && c.nSeqMax > 1 && src != dst && (p0 > 0 || p1 >= 0) {
		return fmt.Errorf("bindings: sequences of this context each have their own memory stream, so only whole sequences can be copied (p0 ≤ 0, p1 < 0), not [%d, %d)", p0, p1)
	}
	C.llama_memory_seq_cp(C.llama_get_memory(c.ptr), C.llama_seq_id(src), C.llama_seq_id(dst), C.llama_pos(p0), C.llama_pos(p1))
	return nil
}

// SeqKeep drops every token that does not belong to sequence seq.
func (c *Context) SeqKeep(seq int32) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq, false); err != nil {
		return err
	}
	// llama_memory_seq_keep only clears the KV stream seq lives in; with a stream per
	// sequence (KVUnified off) the others would survive. Removing every other sequence
	// whole has the documented meaning in both layouts and never fails.
	mem := C.llama_get_memory(c.ptr)
	for s := 0; s < c.nSeqMax; s++ {
		if int32(s) != seq {
			C.llama_memory_seq_rm(mem, C.llama_seq_id(s), -1, -1)
		}
	}
	return nil
}

// SeqShift adds delta to the positions of sequence seq's tokens in [p0, p1), as context
// shifting does; it fails when the memory cannot shift (see llama_memory_can_shift).
func (c *Context) SeqShift(seq, p0, p1, delta int32) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq, false); err != nil {
		return err
	}
	mem := C.llama_get_memory(c.ptr)
	if !C.llama_memory_can_shift(mem) {
		return fmt.Errorf("bindings: this model's memory cannot shift positions")
	}
	C.llama_memory_seq_add(mem, C.llama_seq_id(seq), C.llama_pos(p0), C.llama_pos(p1), C.llama_pos(delta))
	return nil
}

// SeqPosRange returns the smallest and largest positions sequence seq holds, or -1, -1
// when it is empty; the next token of the sequence goes at max+1.
func (c *Context) SeqPosRange(seq int32) (minPos, maxPos int32, err error) {
	if err := c.lock(); err != nil {
		return -1, -1, err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq, false); err != nil {
		return -1, -1, err
	}
	mem := C.llama_get_memory(c.ptr)
	return int32(C.llama_memory_seq_pos_min(mem, C.llama_seq_id(seq))),
		int32(C.llama_memory_seq_pos_max(mem, C.llama_seq_id(seq))), nil
}
