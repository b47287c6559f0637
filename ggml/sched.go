//go:build cgo

package ggml

/*
#include <stdlib.h>
#include "ggml.h"
#include "ggml-backend.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Scheduler computes graphs over one or more backends, placing each op on the first
// backend (in priority order) that holds its weights and supports it, and allocating
// intermediate tensors itself.
type Scheduler struct {
	s        C.ggml_backend_sched_t
	backends []*Backend
	arr      unsafe.Pointer // C array of backends, freed in Close
}

// NewScheduler returns a scheduler over backends (highest priority first) for graphs of
// up to graphSize nodes. ggml needs a CPU backend, and last: it is moved there.
func NewScheduler(backends []*Backend, graphSize int) (*Scheduler, error) {
	var ordered []*Backend
	var cpu *Backend
	for _, b := range backends {
		if b == nil || b.b == nil {
			return nil, ErrClosed
		}
		if b.cpu {
			if cpu == nil {
				cpu = b
			}
			continue
		}
		ordered = append(ordered, b)
	}
	if cpu == nil {
		return nil, fmt.Errorf("ggml: a scheduler needs a CPU backend among its backends")
	}
	ordered = append(ordered, cpu)
	arr := C.malloc(C.size_t(len(ordered)) * C.size_t(unsafe.Sizeof(C.ggml_backend_t(nil))))
	list := unsafe.Slice((*C.ggml_backend_t)(arr), len(ordered))
	for i, b := range ordered {
		list[i] = b.b
	}
	s := C.ggml_backend_sched_new((*C.ggml_backend_t)(arr), nil, C.int(len(ordered)), C.size_t(graphSize), false, true)
	if s == nil {
		C.free(arr)
		return nil, fmt.Errorf("ggml: creating a scheduler failed")
	}
	return &Scheduler{s: s, backends: ordered, arr: arr}, nil
}

// BufferSize is the size in bytes of the compute buffers the scheduler holds, over
// all its backends: what the last allocated graph's intermediate tensors needed.
func (s *Scheduler) BufferSize() int {
	n := 0
	for _, b := range s.backends {
		n += int(C.ggml_backend_sched_get_buffer_size(s.live(), b.b))
	}
	return n
}

// Backends returns the scheduler's backends in priority order.
func (s *Scheduler) Backends() []*Backend { return s.backends }

func (s *Scheduler) live() C.ggml_backend_sched_t {
	if s == nil || s.s == nil {
		panic(ErrClosed)
	}
	return s.s
}

// Reserve sizes the scheduler's buffers for the worst case graph g, so later graphs of
// the same shape or smaller allocate nothing.
func (s *Scheduler) Reserve(g *Graph) error {
	if s == nil || s.s == nil {
		return ErrClosed
	}
	if !C.ggml_backend_sched_reserve(s.s, g.live()) {
		return fmt.Errorf("ggml: reserving compute buffers: %w", ErrOutOfMemory)
	}
	return nil
}

// Alloc assigns backends to g's nodes and allocates its intermediate tensors; inputs can
// be set after Alloc and before Compute.
func (s *Scheduler) Alloc(g *Graph) error {
	if s == nil || s.s == nil {
		return ErrClosed
	}
	C.ggml_backend_sched_reset(s.s)
	g.c.forgetPlacement()
	if !C.ggml_backend_sched_alloc_graph(s.s, g.live()) {
		return fmt.Errorf("ggml: allocating graph of %d nodes: %w", g.Len(), ErrOutOfMemory)
	}
	return nil
}

// Run computes a graph that Alloc allocated.
func (s *Scheduler) Run(g *Graph) error {
	if s == nil || s.s == nil {
		return ErrClosed
	}
	if st := C.ggml_backend_sched_graph_compute(s.s, g.live()); st != C.GGML_STATUS_SUCCESS {
		return &StatusError{Op: "graph compute", Status: int(st)}
	}
	return nil
}

// Compute allocates and computes g. Tensors g computes that are not marked as outputs
// may be overwritten; read results from outputs (SetOutput) or leaves.
func (s *Scheduler) Compute(g *Graph) error {
	if err := s.Alloc(g); err != nil {
		return err
	}
	return s.Run(g)
}

// BackendOf is the backend that computes node t in the last allocated graph, or nil.
func (s *Scheduler) BackendOf(t *Tensor) *Backend {
	b := C.ggml_backend_sched_get_tensor_backend(s.live(), t.ptr())
	for _, be := range s.backends {
		if be.b == b {
			return be
		}
	}
	return nil
}

// Placement counts the nodes of the last allocated graph g per backend name, and lists
// per backend the ops it ran (op name → count): how to check that nothing fell back
// to the CPU.
func (s *Scheduler) Placement(g *Graph) map[string]map[string]int {
	out := map[string]map[string]int{}
	for i := 0; i < g.Len(); i++ {
		n := g.Node(i)
		name := "none"
		if b := s.BackendOf(n); b != nil {
			name = b.Name()
		}
		if out[name] == nil {
			out[name] = map[string]int{}
		}
		out[name][n.Op()]++
	}
	return out
}

// Splits is the number of graph pieces the last graph was cut into across backends.
func (s *Scheduler) Splits() int { return int(C.ggml_backend_sched_get_n_splits(s.live())) }

// Close frees the scheduler and its compute buffers (not the backends). Safe twice.
func (s *Scheduler) Close() error {
	if s == nil || s.s == nil {
		return nil
	}
	C.ggml_backend_sched_free(s.s)
	C.free(s.arr)
	s.s, s.arr = nil, nil
	return nil
}

// forgetPlacement clears the memory a scheduler gave c's tensors, so that allocating a
// graph again places them anew. ggml's allocator treats a tensor with data as allocated
// by someone else; after another graph grew the scheduler's compute buffer, the old
// one is freed and those pointers dangle (computing a kept graph then wrote into freed
// memory). Tensors in c's own buffers (AllocTensors) keep their memory; views are
// re-derived from their source by the allocator.
func (c *Context) forgetPlacement() {
	if c == nil || c.ctx == nil {
		return
	}
	for t := C.ggml_get_first_tensor(c.ctx); t != nil; t = C.ggml_get_next_tensor(c.ctx, t) {
		if t.buffer == nil || c.owns(t.buffer) {
			continue
		}
		t.buffer = nil
		t.data = nil
	}
}

func (c *Context) owns(b C.ggml_backend_buffer_t) bool {
	for _, o := range c.own {
		if o == b {
			return true
		}
	}
	return false
}
