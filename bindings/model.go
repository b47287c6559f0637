package bindings

/*
#include <stdlib.h>
#include <stdbool.h>
#include "llama.h"
#include "ggml-backend.h"

// goLlamaProgress is the exported Go trampoline in callbacks.go.
extern bool goLlamaProgress(float progress, void *user_data);
*/
import "C"

import (
	"fmt"
	"runtime"
	"runtime/cgo"
	"sync"
	"unsafe"
)

// ProgressFunc receives the fraction of a model load completed, from 0 to 1; returning
// false cancels the load. It runs on the goroutine that called LoadModel.
type ProgressFunc func(fraction float32) bool

// ModelOptions configures LoadModel; the zero value memory-maps the whole model on the CPU.
type ModelOptions struct {
	// GPULayers is how many layers to offload to a GPU or to RPCServers: 0 keeps the model
	// on the CPU and a negative value offloads every layer. Without RPCServers it has no
	// effect on a CPU-only build.
	GPULayers int
	// RPCServers are "host:port" endpoints of llama.cpp rpc-servers; the offloaded layers
	// are split across them (and any local GPUs) by their free memory. Each is probed
	// before libllama sees it, so one that cannot be reached is an error wrapping
	// ErrRPCUnavailable. The protocol has no authentication: trusted networks only.
	RPCServers []string
	// NoMmap reads the file into memory instead of memory-mapping it.
	NoMmap bool
	// VocabOnly loads the vocabulary and metadata but no weights: enough to tokenize.
	VocabOnly bool
	// NoRepack keeps weights in their file layout: llama.cpp otherwise repacks some
	// quantized types (Q4_0, IQ4_NL, Q4_K, ...) for faster CPU kernels whose rounding
	// differs slightly from a plain ggml product's (llama.cpp's --no-repack).
	NoRepack bool
	// Progress, if set, is called as the load advances.
	Progress ProgressFunc
}

// Model is a loaded GGUF model, the owner of a llama_model. Tokenizer methods are safe
// for concurrent use. Close frees it, first closing every Context and Adapter made from it.
type Model struct {
	mu    sync.RWMutex // guards ptr and vocab; Close holds it for writing
	ptr   *C.struct_llama_model
	vocab *C.struct_llama_vocab

	// Read once at load; immutable afterwards, so readable after Close.
	path         string
	opts         ModelOptions
	shapes       map[string][ggmlMaxDims]int64 // tensor name → shape, for adapter checks
	meta         map[string]string
	desc         string
	chatTemplate string
	nParams      uint64
	size         uint64
	nEmbd        int
	nLayer       int
	nHead        int
	nHeadKV      int
	nCtxTrain    int
	nVocab       int
	bos, eos     int32
	eot, nl      int32
	addBOS       bool
	addEOS       bool

	kidsMu   sync.Mutex // guards contexts and adapters
	contexts map[*Context]struct{}
	adapters map[*Adapter]struct{}
}

// LoadModel validates path as a GGUF file in Go, then loads it with libllama. A missing,
// truncated or non-GGUF file returns an error naming it (matching ErrInvalidGGUF when the
// contents are at fault) without reaching C. The caller owns the Model and must Close it.
func LoadModel(path string, opts ModelOptions) (*Model, error) {
	h, err := readGGUFHeader(path)
	if err != nil {
		return nil, fmt.Errorf("bindings: load model: %w", err)
	}
	arch, ok := h.str("general.architecture")
	if !ok {
		return nil, fmt.Errorf("bindings: load model: %s: %w", path,
			invalidf("general.architecture is missing or not a string (is it an adapter or a non-model GGUF?)"))
	}
	if err := checkModel(h, arch); err != nil && !opts.VocabOnly {
		return nil, fmt.Errorf("bindings: load model: %s: %w", path, err)
	}
	initBackend()

	params := C.llama_model_default_params()
	params.n_gpu_layers = C.int32_t(opts.GPULayers)
	params.load_mode = C.LLAMA_LOAD_MODE_MMAP
	if opts.NoMmap {
		params.load_mode = C.LLAMA_LOAD_MODE_NONE
	}
	params.vocab_only = C.bool(opts.VocabOnly)
	if opts.NoRepack {
		params.use_extra_bufts = C.bool(false)
	}

	if len(opts.RPCServers) > 0 && !opts.VocabOnly {
		if opts.GPULayers == 0 {
			return nil, fmt.Errorf("bindings: load model %s: RPC servers with GPULayers 0 would hold no layer; set GPULayers (-1 for all)", path)
		}
		devs, err := rpcDevices(opts.RPCServers)
		if err != nil {
			return nil, fmt.Errorf("bindings: load model %s: %w", path, err)
		}
		// libllama copies the NULL-terminated list while it loads; C memory, freed after.
		list := unsafe.Slice((*C.ggml_backend_dev_t)(C.calloc(C.size_t(len(devs)+1), C.size_t(unsafe.Sizeof(devs[0])))), len(devs)+1)
		defer C.free(unsafe.Pointer(&list[0]))
		copy(list, devs)
		params.devices = &list[0]
	}

	cancelled := false
	if opts.Progress != nil {
		// The handle travels to C through user_data; the pinner keeps the Go variable
		// holding it in place while C holds its address.
		progress := ProgressFunc(func(f float32) bool {
			ok := opts.Progress(f)
			cancelled = cancelled || !ok
			return ok
		})
		handle := cgo.NewHandle(progress)
		defer handle.Delete()
		var pinner runtime.Pinner
		defer pinner.Unpin()
		pinner.Pin(&handle)
		params.progress_callback = C.llama_progress_callback(C.goLlamaProgress)
		params.progress_callback_user_data = unsafe.Pointer(&handle)
	}

	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	mark := sink.errorMark()
	ptr := C.llama_model_load_from_file(cpath, params)
	if ptr == nil {
		if cancelled {
			return nil, fmt.Errorf("bindings: load model %s: cancelled by the progress callback", path)
		}
		return nil, fmt.Errorf("bindings: load model %s: libllama could not load it%s", path, sink.why(mark, "; its log (see SetLogger) says why"))
	}

	m := &Model{
		ptr:      ptr,
		vocab:    C.llama_model_get_vocab(ptr),
		path:     path,
		opts:     opts,
		shapes:   make(map[string][ggmlMaxDims]int64, len(h.tensors)),
		contexts: map[*Context]struct{}{},
		adapters: map[*Adapter]struct{}{},
	}
	for _, t := range h.tensors {
		m.shapes[t.name] = t.ne
	}
	m.readInfo()
	return m, nil
}

// readInfo caches the model's metadata and hyperparameters, which never change after load.
func (m *Model) readInfo() {
	m.meta = map[string]string{}
	for i := C.int32_t(0); i < C.llama_model_meta_count(m.ptr); i++ {
		k, ok := cStringOut(func(buf *C.char, n C.size_t) C.int32_t {
			return C.llama_model_meta_key_by_index(m.ptr, i, buf, n)
		})
		if !ok {
			continue
		}
		v, _ := cStringOut(func(buf *C.char, n C.size_t) C.int32_t {
			return C.llama_model_meta_val_str_by_index(m.ptr, i, buf, n)
		})
		m.meta[k] = v
	}
	m.desc, _ = cStringOut(func(buf *C.char, n C.size_t) C.int32_t {
		return C.int32_t(C.llama_model_desc(m.ptr, buf, n))
	})
	if t := C.llama_model_chat_template(m.ptr, nil); t != nil {
		m.chatTemplate = C.GoString(t)
	}
	m.nParams = uint64(C.llama_model_n_params(m.ptr))
	m.size = uint64(C.llama_model_size(m.ptr))
	m.nEmbd = int(C.llama_model_n_embd(m.ptr))
	m.nLayer = int(C.llama_model_n_layer(m.ptr))
	if m.nLayer > 0 {
		// The head counts are per layer; llama.cpp aborts when asked with no layers, as
		// vocabulary-only GGUFs have.
		m.nHead = int(C.llama_model_n_head(m.ptr))
		m.nHeadKV = int(C.llama_model_n_head_kv(m.ptr))
	}
	m.nCtxTrain = int(C.llama_model_n_ctx_train(m.ptr))
	m.nVocab = int(C.llama_vocab_n_tokens(m.vocab))
	m.bos = int32(C.llama_vocab_bos(m.vocab))
	m.eos = int32(C.llama_vocab_eos(m.vocab))
	m.eot = int32(C.llama_vocab_eot(m.vocab))
	m.nl = int32(C.llama_vocab_nl(m.vocab))
	m.addBOS = bool(C.llama_vocab_get_add_bos(m.vocab))
	m.addEOS = bool(C.llama_vocab_get_add_eos(m.vocab))
}

// cStringOut calls a llama.cpp function that writes a NUL-terminated string into a
// caller buffer and returns its full length (or -1 when absent), retrying with a buffer
// large enough when the first is too small.
func cStringOut(fn func(buf *C.char, n C.size_t) C.int32_t) (string, bool) {
	var small [256]C.char
	n := fn(&small[0], C.size_t(len(small)))
	if n < 0 {
		return "", false
	}
	if int(n) < len(small) {
		return C.GoStringN(&small[0], C.int(n)), true
	}
	big := make([]C.char, int(n)+1)
	n = fn(&big[0], C.size_t(len(big)))
	if n < 0 || int(n) >= len(big) {
		return "", false
	}
	return C.GoStringN(&big[0], C.int(n)), true
}

// Close frees the model after closing every Context and Adapter made from it. It is
// idempotent and safe on a nil *Model; afterwards methods that reach C return ErrClosed.
func (m *Model) Close() error {
	if m == nil {
		return nil
	}
	// Take the pointer first so no new context or adapter can be made from it, then close
	// the children, which hold pointers into the model, then free it.
	m.mu.Lock()
	ptr := m.ptr
	m.ptr, m.vocab = nil, nil
	m.mu.Unlock()
	if ptr == nil {
		return nil
	}
	m.kidsMu.Lock()
	contexts := make([]*Context, 0, len(m.contexts))
	for c := range m.contexts {
		contexts = append(contexts, c)
	}
	adapters := make([]*Adapter, 0, len(m.adapters))
	for a := range m.adapters {
		adapters = append(adapters, a)
	}
	m.kidsMu.Unlock()
	for _, c := range contexts {
		c.Close()
	}
	for _, a := range adapters {
		a.Close()
	}
	C.llama_model_free(ptr)
	return nil
}

// rlock read-locks the model and reports ErrClosed when it is closed; on success the
// caller must call m.mu.RUnlock.
func (m *Model) rlock() error {
	if m == nil {
		return ErrClosed
	}
	m.mu.RLock()
	if m.ptr == nil {
		m.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// addContext and the methods below keep the registry Close walks.
func (m *Model) addContext(c *Context) {
	m.kidsMu.Lock()
	m.contexts[c] = struct{}{}
	m.kidsMu.Unlock()
}

func (m *Model) removeContext(c *Context) {
	m.kidsMu.Lock()
	delete(m.contexts, c)
	m.kidsMu.Unlock()
}

func (m *Model) addAdapter(a *Adapter) {
	m.kidsMu.Lock()
	m.adapters[a] = struct{}{}
	m.kidsMu.Unlock()
}

func (m *Model) removeAdapter(a *Adapter) {
	m.kidsMu.Lock()
	delete(m.adapters, a)
	m.kidsMu.Unlock()
}

// liveContexts returns the contexts currently open on the model.
func (m *Model) liveContexts() []*Context {
	m.kidsMu.Lock()
	defer m.kidsMu.Unlock()
	out := make([]*Context, 0, len(m.contexts))
	for c := range m.contexts {
		out = append(out, c)
	}
	return out
}

// Path returns the file the model was loaded from.
func (m *Model) Path() string { return m.path }

// Arch returns the model's architecture name (general.architecture), e.g. "llama".
func (m *Model) Arch() string { return m.meta["general.architecture"] }

// Description returns llama.cpp's one-line description of the model (type, size, file type).
func (m *Model) Description() string { return m.desc }

// Meta returns the metadata value of key rendered as a string, or "" when absent; arrays
// are not available this way.
func (m *Model) Meta(key string) string { return m.meta[key] }

// Metadata returns a copy of every scalar metadata key and its value rendered as a string.
func (m *Model) Metadata() map[string]string {
	out := make(map[string]string, len(m.meta))
	for k, v := range m.meta {
		out[k] = v
	}
	return out
}

// NParams returns the number of parameters in the model's tensors (0 for VocabOnly).
func (m *Model) NParams() uint64 { return m.nParams }

// Size returns the total size of the model's tensors in bytes (0 for VocabOnly).
func (m *Model) Size() uint64 { return m.size }

// NEmbd returns the embedding width.
func (m *Model) NEmbd() int { return m.nEmbd }

// NLayer returns the number of transformer blocks.
func (m *Model) NLayer() int { return m.nLayer }

// NHead returns the number of attention heads.
func (m *Model) NHead() int { return m.nHead }

// NHeadKV returns the number of key/value heads (fewer than NHead with grouped-query attention).
func (m *Model) NHeadKV() int { return m.nHeadKV }

// NCtxTrain returns the context length the model declares it was trained with.
func (m *Model) NCtxTrain() int { return m.nCtxTrain }

// ChatTemplate returns the model's default chat template (tokenizer.chat_template), or "".
func (m *Model) ChatTemplate() string { return m.chatTemplate }
