package bindings

/*
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// SeqState is the saved memory of one sequence, as SeqStates returns it.
type SeqState struct {
	Seq  int32  // the sequence it was saved from, and by default restored to
	Data []byte // llama.cpp's serialized state; opaque, valid for the same model and context options
}

// State returns a copy of the whole context state: every sequence's memory plus the
// last outputs.
func (c *Context) State() ([]byte, error) {
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	buf := make([]byte, int(C.llama_state_get_size(c.ptr)))
	if len(buf) == 0 {
		return buf, nil
	}
	n := C.llama_state_get_data(c.ptr, (*C.uint8_t)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	return buf[:n], nil
}

// SetState restores a state returned by State on a context of the same model and options.
func (c *Context) SetState(data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("bindings: set state: empty state")
	}
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	c.outputs, c.nOutputs = c.outputs[:0], 0
	if C.llama_state_set_data(c.ptr, (*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data))) == 0 {
		return fmt.Errorf("bindings: set state: llama.cpp rejected %d bytes (different model or options?)", len(data))
	}
	return nil
}

// SeqStates saves the memory of several sequences at once, one SeqState per id, in order.
func (c *Context) SeqStates(seqs ...int32) ([]SeqState, error) {
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	out := make([]SeqState, 0, len(seqs))
	for _, s := range seqs {
		if err := c.checkSeq(s, false); err != nil {
			return nil, err
		}
		buf := make([]byte, int(C.llama_state_seq_get_size(c.ptr, C.llama_seq_id(s))))
		if len(buf) > 0 {
			n := C.llama_state_seq_get_data(c.ptr, (*C.uint8_t)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), C.llama_seq_id(s))
			buf = buf[:n]
		}
		out = append(out, SeqState{Seq: s, Data: buf})
	}
	return out, nil
}

// SetSeqStates restores each state into its sequence (SeqState.Seq), replacing what that
// sequence held; the states may come from another context of the same model and options.
func (c *Context) SetSeqStates(states ...SeqState) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	for _, st := range states {
		if err := c.checkSeq(st.Seq, false); err != nil {
			return err
		}
		if len(st.Data) == 0 {
			return fmt.Errorf("bindings: set sequence %d state: empty state", st.Seq)
		}
	}
	c.outputs, c.nOutputs = c.outputs[:0], 0
	mem := C.llama_get_memory(c.ptr)
	for _, st := range states {
		C.llama_memory_seq_rm(mem, C.llama_seq_id(st.Seq), -1, -1)
		if C.llama_state_seq_set_data(c.ptr, (*C.uint8_t)(unsafe.Pointer(&st.Data[0])), C.size_t(len(st.Data)), C.llama_seq_id(st.Seq)) == 0 {
			return fmt.Errorf("bindings: set sequence %d state: llama.cpp rejected %d bytes (different model or options?)", st.Seq, len(st.Data))
		}
	}
	return nil
}
