package bindings

/*
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"slices"
)

// SetSeqAdapters applies adapters per sequence, so that sequences on different adapters
// decode in one batch: every token of sequence s is adapted by each adapters[i] with
// scale scales[s][i] (0 for one its sequence does not use), and scales has a row of
// len(adapters) for each of the context's NSeqMax sequences. Each token then computes
// every listed adapter's product, or its own adapter's alone where it can (SeqAdaptersStacked).
// Changing only the scales is cheap; a new list of adapters re-plans llama.cpp's compute
// graph, as SetAdapters does. An empty list, or SetAdapters, leaves the mode. Every
// adapter must belong to the context's model, appear once, and have one rank for all its
// weights. (A patch of ecotune's to llama.cpp: third_party/patches.)
func (c *Context) SetSeqAdapters(adapters []*Adapter, scales [][]float32) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if len(adapters) == 0 {
		C.llama_set_adapters_lora_seq(c.ptr, nil, 0, nil, 0)
		c.seqAdapters, c.adapters = nil, nil
		return nil
	}
	if len(scales) != c.nSeqMax {
		return fmt.Errorf("bindings: set adapters per sequence: %d rows of scales for %d sequences", len(scales), c.nSeqMax)
	}
	ptrs := make([]*C.struct_llama_adapter_lora, len(adapters))
	for i, a := range adapters {
		switch {
		case a == nil:
			return fmt.Errorf("bindings: set adapters per sequence: nil adapter")
		case a.model != c.model:
			return fmt.Errorf("bindings: set adapters per sequence: %s was loaded for model %s, not %s", a.path, a.model.path, c.model.path)
		case slices.Index(adapters, a) != i:
			return fmt.Errorf("bindings: set adapters per sequence: %s listed twice", a.path)
		}
		a.mu.RLock()
		defer a.mu.RUnlock()
		if a.ptr == nil {
			return fmt.Errorf("bindings: set adapters per sequence: %s: %w", a.path, ErrClosed)
		}
		ptrs[i] = a.ptr
	}
	flat := make([]C.float, 0, len(scales)*len(adapters))
	for s, row := range scales {
		if len(row) != len(adapters) {
			return fmt.Errorf("bindings: set adapters per sequence: sequence %d has %d scales for %d adapters", s, len(row), len(adapters))
		}
		for _, v := range row {
			flat = append(flat, C.float(v))
		}
	}
	rc := C.llama_set_adapters_lora_seq(c.ptr, &ptrs[0], C.size_t(len(ptrs)), &flat[0], C.size_t(len(scales)))
	if rc < 0 {
		return fmt.Errorf("bindings: set adapters per sequence: llama.cpp refused them (an adapter whose weights differ in rank; its log says which)")
	}
	c.seqAdapters, c.adapters, c.seqStacked = slices.Clone(adapters), nil, rc == 1
	return nil
}

// SeqAdaptersStacked reports whether the adapters SetSeqAdapters applied last are stacked:
// each weight adds every token's own adapter's products alone, in one graph node for all
// of them (patch 0021), as one adapter costs, rather than every adapter's products for
// every token: on x86's CPU, for adapters of one rank in F32 while every sequence uses at
// most one of them. Either way a token's logits are those of its own adapters applied
// alone, to the bit.
func (c *Context) SeqAdaptersStacked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seqAdapters != nil && c.seqStacked
}
