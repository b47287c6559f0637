package bindings

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// Adapter is a LoRA adapter loaded for one Model, the owner of a llama_adapter_lora.
// Apply it to contexts with Context.SetAdapters. Close detaches it from every context of
// its model and frees it; Model.Close closes it too.
type Adapter struct {
	closeMu sync.Mutex   // serializes Close, so a concurrent Model.Close waits for it
	mu      sync.RWMutex // guards ptr; SetAdapters holds it for reading across the C call
	ptr     *C.struct_llama_adapter_lora

	model *Model
	path  string
	meta  map[string]string
	alpha float32
	rank  int
}

// AdapterScale pairs an adapter with the factor its update is multiplied by.
type AdapterScale struct {
	Adapter *Adapter
	Scale   float32 // 1 applies the adapter as trained; 0 leaves it out
}

// LoadAdapter validates path in Go as a LoRA GGUF for m (metadata types, architecture,
// complete lora_a/lora_b pairs naming tensors of m with matching shapes, data inside the
// file), then loads it. The caller owns the Adapter and must Close it.
func LoadAdapter(m *Model, path string) (*Adapter, error) {
	h, err := readGGUFHeader(path)
	if err != nil {
		return nil, fmt.Errorf("bindings: load adapter: %w", err)
	}
	if err := m.rlock(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	if m.opts.VocabOnly {
		return nil, fmt.Errorf("bindings: load adapter %s: model %s was loaded VocabOnly", path, m.path)
	}
	rank, err := checkAdapter(h, m)
	if err != nil {
		return nil, fmt.Errorf("bindings: load adapter %s: %w", path, err)
	}

	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	mark := sink.errorMark()
	ptr := C.llama_adapter_lora_init(m.ptr, cpath)
	if ptr == nil {
		return nil, fmt.Errorf("bindings: load adapter %s: libllama could not load it%s", path, sink.why(mark, "; its log says why"))
	}
	a := &Adapter{ptr: ptr, model: m, path: path, rank: rank, meta: map[string]string{}}
	if v, ok := h.kv["adapter.lora.alpha"]; ok {
		a.alpha = v.val.(float32)
	}
	for i := C.int32_t(0); i < C.llama_adapter_meta_count(ptr); i++ {
		k, ok := cStringOut(func(buf *C.char, n C.size_t) C.int32_t {
			return C.llama_adapter_meta_key_by_index(ptr, i, buf, n)
		})
		if !ok {
			continue
		}
		a.meta[k], _ = cStringOut(func(buf *C.char, n C.size_t) C.int32_t {
			return C.llama_adapter_meta_val_str_by_index(ptr, i, buf, n)
		})
	}
	m.addAdapter(a)
	return a, nil
}

// checkAdapter mirrors llama_adapter_lora_init's checks in Go. Some matter for safety, not
// just messages: llama.cpp reads general.type and the alpha with getters that abort the
// process when the stored type differs. It returns the rank of the first pair.
func checkAdapter(h *ggufHeader, m *Model) (int, error) {
	for _, key := range []string{"general.type", "adapter.type", "general.architecture"} {
		if v, ok := h.kv[key]; ok && v.typ != ggufTypeString {
			return 0, invalidf("%s has type %d, want string", key, v.typ)
		}
	}
	if t, _ := h.str("general.type"); t != "adapter" {
		return 0, fmt.Errorf("general.type is %q, want \"adapter\" (is it a model rather than an adapter?)", t)
	}
	if t, _ := h.str("adapter.type"); t != "lora" {
		return 0, fmt.Errorf("adapter.type is %q, want \"lora\"", t)
	}
	if arch, _ := h.str("general.architecture"); arch != m.Arch() {
		return 0, fmt.Errorf("adapter architecture %q does not match the model's %q", arch, m.Arch())
	}
	if v, ok := h.kv["adapter.lora.alpha"]; ok {
		if v.typ != ggufTypeFloat32 {
			return 0, invalidf("adapter.lora.alpha has type %d, want float32", v.typ)
		}
		if a := float64(v.val.(float32)); math.IsNaN(a) || math.IsInf(a, 0) {
			return 0, invalidf("adapter.lora.alpha is %v, want a finite number", a)
		}
	}

	type pair struct{ a, b *ggufTensor }
	pairs := map[string]*pair{}
	for i := range h.tensors {
		t := &h.tensors[i]
		switch {
		case strings.HasSuffix(t.name, ".lora_a"):
			p := pairs[strings.TrimSuffix(t.name, ".lora_a")]
			if p == nil {
				p = &pair{}
				pairs[strings.TrimSuffix(t.name, ".lora_a")] = p
			}
			p.a = t
		case strings.HasSuffix(t.name, ".lora_b"):
			p := pairs[strings.TrimSuffix(t.name, ".lora_b")]
			if p == nil {
				p = &pair{}
				pairs[strings.TrimSuffix(t.name, ".lora_b")] = p
			}
			p.b = t
		case strings.HasSuffix(t.name, "_norm.weight"):
			// llama.cpp ignores norm vectors in adapters.
		default:
			return 0, fmt.Errorf("tensor %q is neither a .lora_a nor a .lora_b", t.name)
		}
	}
	if len(pairs) == 0 {
		return 0, fmt.Errorf("adapter has no lora_a/lora_b tensor pairs")
	}
	names := make([]string, 0, len(pairs))
	for name := range pairs {
		names = append(names, name)
	}
	slices.Sort(names)
	rank := 0
	for _, name := range names {
		p := pairs[name]
		if p.a == nil || p.b == nil {
			return 0, fmt.Errorf("tensor pair for %q lacks its lora_a or lora_b", name)
		}
		for _, t := range []*ggufTensor{p.a, p.b} {
			if t.ne[2] != 1 || t.ne[3] != 1 {
				return 0, fmt.Errorf("tensor %q has shape %v; LoRA tensors are 2-D", t.name, t.ne)
			}
			if !loraType(t.typ) {
				return 0, fmt.Errorf("tensor %q has ggml type %d; LoRA tensors hold floating-point or quantized weights", t.name, t.typ)
			}
		}
		if p.a.ne[0] < 1 || p.a.ne[1] < 1 || p.b.ne[0] < 1 || p.b.ne[1] < 1 {
			return 0, fmt.Errorf("tensor %q: lora_a %v and lora_b %v have a dimension of 0 (rank 0?); llama.cpp divides alpha by the rank", name, p.a.ne, p.b.ne)
		}
		base, ok := m.shapes[name]
		if !ok {
			return 0, fmt.Errorf("tensor %q is not in the base model (wrong base model?)", name)
		}
		if strings.HasSuffix(name, "token_embd.weight") {
			// The embedding's pair is stored flipped; see llama.cpp's llm_build_inp_embd.
			if base[0] != p.b.ne[1] || base[1] != p.a.ne[1] {
				return 0, fmt.Errorf("tensor %q: lora shapes %v, %v do not fit base shape %v", name, p.a.ne, p.b.ne, base)
			}
		} else {
			if base[0] != p.a.ne[0] || base[1] != p.b.ne[1] {
				return 0, fmt.Errorf("tensor %q: lora_a %v and lora_b %v do not fit base shape %v", name, p.a.ne, p.b.ne, base)
			}
			if p.a.ne[1] != p.b.ne[0] {
				return 0, fmt.Errorf("tensor %q: lora_a rank %d differs from lora_b rank %d", name, p.a.ne[1], p.b.ne[0])
			}
		}
		if rank == 0 {
			rank = int(p.b.ne[0])
		}
	}
	return rank, nil
}

// Close detaches the adapter from every context of its model and frees it. It is
// idempotent and safe on a nil *Adapter.
func (a *Adapter) Close() error {
	if a == nil {
		return nil
	}
	a.closeMu.Lock()
	defer a.closeMu.Unlock()
	a.mu.Lock()
	ptr := a.ptr
	a.ptr = nil // from here SetAdapters refuses it
	a.mu.Unlock()
	if ptr == nil {
		return nil
	}
	for _, c := range a.model.liveContexts() {
		c.dropAdapter(a)
	}
	C.llama_adapter_lora_free(ptr)
	a.model.removeAdapter(a)
	return nil
}

// Path returns the file the adapter was loaded from.
func (a *Adapter) Path() string { return a.path }

// Alpha returns adapter.lora.alpha (0 when absent). llama.cpp scales the update by
// Scale × Alpha / Rank, or by Scale alone when Alpha is 0.
func (a *Adapter) Alpha() float32 { return a.alpha }

// Rank returns the rank of the adapter's first tensor pair (by name).
func (a *Adapter) Rank() int { return a.rank }

// Meta returns the adapter's metadata value for key rendered as a string, or "".
func (a *Adapter) Meta(key string) string { return a.meta[key] }

// Metadata returns a copy of the adapter's scalar metadata rendered as strings.
func (a *Adapter) Metadata() map[string]string {
	out := make(map[string]string, len(a.meta))
	for k, v := range a.meta {
		out[k] = v
	}
	return out
}

// SetAdapters replaces the context's adapters with list (several may be active at once,
// each with its own scale; an empty list removes all). Every adapter must belong to the
// context's model and appear once.
func (c *Context) SetAdapters(list []AdapterScale) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	seen := map[*Adapter]bool{}
	for _, as := range list {
		switch {
		case as.Adapter == nil:
			return fmt.Errorf("bindings: set adapters: nil adapter")
		case as.Adapter.model != c.model:
			return fmt.Errorf("bindings: set adapters: %s was loaded for model %s, not %s", as.Adapter.path, as.Adapter.model.path, c.model.path)
		case seen[as.Adapter]:
			return fmt.Errorf("bindings: set adapters: %s listed twice; load the file twice to stack it", as.Adapter.path)
		}
		seen[as.Adapter] = true
	}
	return c.applyAdapters(list)
}

// ClearAdapters removes every adapter from the context.
func (c *Context) ClearAdapters() error { return c.SetAdapters(nil) }

// RemoveAdapter takes a off the context, keeping the others.
func (c *Context) RemoveAdapter(a *Adapter) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	return c.applyAdapters(slices.DeleteFunc(slices.Clone(c.adapters), func(as AdapterScale) bool { return as.Adapter == a }))
}

// Adapters returns the adapters active on the context with their scales.
func (c *Context) Adapters() []AdapterScale {
	if c.lock() != nil {
		return nil
	}
	defer c.mu.Unlock()
	return slices.Clone(c.adapters)
}

// dropAdapter is Adapter.Close's hook: it takes a off the context, if there.
func (c *Context) dropAdapter(a *Adapter) {
	if c.lock() != nil {
		return
	}
	defer c.mu.Unlock()
	if slices.Contains(c.seqAdapters, a) {
		// The per-sequence mode ends; its user sets it again without a.
		C.llama_set_adapters_lora_seq(c.ptr, nil, 0, nil, 0)
		c.seqAdapters = nil
	}
	if !slices.ContainsFunc(c.adapters, func(as AdapterScale) bool { return as.Adapter == a }) {
		return
	}
	rest := slices.DeleteFunc(slices.Clone(c.adapters), func(as AdapterScale) bool {
		return as.Adapter == a || as.Adapter.closing()
	})
	if c.applyAdapters(rest) != nil {
		// Cannot happen after filtering closed adapters; make sure a is gone regardless.
		C.llama_set_adapters_lora(c.ptr, nil, 0, nil)
		c.adapters = nil
	}
}

// closing reports whether Close has begun on a.
func (a *Adapter) closing() bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.ptr == nil
}

// applyAdapters hands list to llama_set_adapters_lora; c.mu is held. Each adapter is
// read-locked across the call so none is freed while llama.cpp records its pointer.
func (c *Context) applyAdapters(list []AdapterScale) error {
	ptrs := make([]*C.struct_llama_adapter_lora, 0, len(list))
	scales := make([]C.float, 0, len(list))
	for _, as := range list {
		as.Adapter.mu.RLock()
		defer as.Adapter.mu.RUnlock()
		if as.Adapter.ptr == nil {
			return fmt.Errorf("bindings: set adapters: %s: %w", as.Adapter.path, ErrClosed)
		}
		ptrs = append(ptrs, as.Adapter.ptr)
		scales = append(scales, C.float(as.Scale))
	}
	if len(list) == 0 {
		C.llama_set_adapters_lora(c.ptr, nil, 0, nil)
	} else {
		C.llama_set_adapters_lora(c.ptr, &ptrs[0], C.size_t(len(ptrs)), &scales[0])
	}
	c.adapters = slices.Clone(list)
	c.seqAdapters = nil // llama_set_adapters_lora leaves the per-sequence mode
	return nil
}

// loraType reports whether ggml type t can hold adapter weights: any float or block
// type, not the integer types (I8 … I64) or F64, which ggml's matrix products refuse.
func loraType(t uint32) bool {
	return t < uint32(C.GGML_TYPE_I8) || t > uint32(C.GGML_TYPE_F64)
}
