package bindings

/*
#include "llama.h"
#include "ggml-cpu.h"
*/
import "C"

import (
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// FlashAttn selects whether a context uses Flash Attention.
type FlashAttn int

// Flash Attention settings; the zero value lets llama.cpp decide per device.
const (
	FlashAttnAuto     FlashAttn = iota // llama.cpp decides (LLAMA_FLASH_ATTN_TYPE_AUTO)
	FlashAttnEnabled                   // always on
	FlashAttnDisabled                  // always off
)

// ContextOptions configures NewContext; zero fields take the defaults noted.
type ContextOptions struct {
	NCtx         int       // context length in tokens; 0 = the model's training context (llama.cpp rounds up to a multiple of 256)
	NBatch       int       // most tokens one Decode accepts; 0 = min(2048, NCtx)
	NUBatch      int       // physical micro-batch; 0 = min(512, NBatch)
	NSeqMax      int       // distinct sequences the memory holds; 0 = 1
	Threads      int       // threads for single-token decoding; 0 = one per CPU
	ThreadsBatch int       // threads for prompt/batch decoding; 0 = Threads
	Embeddings   bool      // also extract embeddings (Context.Embeddings)
	FlashAttn    FlashAttn // Flash Attention policy
	KVUnified    bool      // one KV buffer shared by all sequences instead of one per sequence
	KVF32        bool      // keep keys and values in F32 instead of llama.cpp's default F16 (twice the memory)
	// BatchInvariant makes a sequence's logits the same to the bit whichever sequences are
	// decoded with it, on the CPU (ecotune's llama.cpp patch, llama_set_batch_invariant):
	// a single token then takes the batched products' kernels rather than ggml's vec_dot,
	// and flash attention one pass over its cells rather than a split across threads.
	BatchInvariant bool
	// GreedyInGraph lets each decode's graph find every output's greedy pick on the CPU
	// threads that computed its logits, while they are in their caches (ecotune's
	// llama.cpp patch, llama_set_argmax_outputs); greedy samplers then read that pick, the
	// same token, instead of scanning the logits after the decode (7-10 µs a 32,000-token
	// row on a 2-core Xeon, half of it from the other core's cache). Honored where the
	// model stays on the CPU (no GPU layers, no RPC servers), whose logits would otherwise
	// be copied to the CPU for it.
	GreedyInGraph bool
}

// Context is an inference session on a Model, the owner of a llama_context: its KV
// memory, output buffers and active adapters. It is not meant for concurrent use (calls
// are serialized by a mutex). Close it before or together with its Model; Model.Close
// closes it too.
type Context struct {
	mu    sync.Mutex // guards everything below
	ptr   *C.struct_llama_context
	model *Model

	nCtx, nCtxSeq, nBatch, nUBatch int
	nSeqMax                        int
	nVocab, nEmbdOut               int
	embeddings                     bool
	kvUnified                      bool
	greedyInGraph                  bool

	// outputs[i] is true when the last successful Decode computed the output of batch
	// index i; Logits checks it so an invalid index never reaches C.
	outputs  []bool
	nOutputs int

	adapters []AdapterScale // as last applied with SetAdapters
	// seqAdapters are the adapters last applied per sequence with SetSeqAdapters (nil
	// outside that mode).
	seqAdapters []*Adapter
	// seqStacked: llama.cpp stacked seqAdapters' products (SeqAdaptersStacked)
	seqStacked bool

	// dec runs the decodes on a thread of its own (decoder.go); started by the first,
	// nil until then. onCaller decodes on the caller's thread instead: set by tests, and
	// when no thread could start.
	dec      *decoder
	onCaller bool

	// pool and poolBatch are the context's own CPU thread pools (poolBatch may be pool).
	// Without them ggml starts and joins its threads for every Decode, which costs little on
	// an idle machine and a scheduling wait per thread, every token, on a busy one.
	pool, poolBatch *C.struct_ggml_threadpool
}

// NewContext creates a context on m. The caller owns it and must Close it.
func NewContext(m *Model, opts ContextOptions) (*Context, error) {
	if err := m.rlock(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	if m.opts.VocabOnly {
		return nil, fmt.Errorf("bindings: new context: model %s was loaded VocabOnly; load it with weights to decode", m.path)
	}
	for _, v := range []int{opts.NCtx, opts.NBatch, opts.NUBatch, opts.NSeqMax, opts.Threads, opts.ThreadsBatch} {
		if v < 0 || v > math.MaxInt32 {
			return nil, fmt.Errorf("bindings: new context: option value %d out of range", v)
		}
	}
	if maxSeq := int(C.llama_max_parallel_sequences()); opts.NSeqMax > maxSeq {
		return nil, fmt.Errorf("bindings: new context: NSeqMax %d exceeds llama.cpp's limit %d", opts.NSeqMax, maxSeq)
	}

	p := C.llama_context_default_params()
	p.n_ctx = C.uint32_t(opts.NCtx)
	if opts.NBatch > 0 {
		p.n_batch = C.uint32_t(opts.NBatch)
	} else if opts.NCtx > 0 {
		p.n_batch = C.uint32_t(min(int(p.n_batch), opts.NCtx))
	}
	if opts.NUBatch > 0 {
		p.n_ubatch = C.uint32_t(opts.NUBatch)
	}
	p.n_ubatch = min(p.n_ubatch, p.n_batch)
	p.n_seq_max = C.uint32_t(max(opts.NSeqMax, 1))
	threads := opts.Threads
	if threads == 0 {
		threads = defaultThreads()
	}
	threadsBatch := opts.ThreadsBatch
	if threadsBatch == 0 {
		threadsBatch = threads
	}
	p.n_threads = C.int32_t(threads)
	p.n_threads_batch = C.int32_t(threadsBatch)
	p.embeddings = C.bool(opts.Embeddings)
	p.kv_unified = C.bool(opts.KVUnified)
	if opts.KVF32 {
		p.type_k, p.type_v = C.GGML_TYPE_F32, C.GGML_TYPE_F32
	}
	switch opts.FlashAttn {
	case FlashAttnEnabled:
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_ENABLED
	case FlashAttnDisabled:
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_DISABLED
	default:
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_AUTO
	}

	ptr := C.llama_init_from_model(m.ptr, p)
	if ptr == nil {
		return nil, fmt.Errorf("bindings: new context on %s: llama.cpp refused the options (NCtx %d, NBatch %d, NSeqMax %d); its log says why",
			m.path, opts.NCtx, opts.NBatch, opts.NSeqMax)
	}
	c := &Context{
		ptr:        ptr,
		model:      m,
		nCtx:       int(C.llama_n_ctx(ptr)),
		nCtxSeq:    int(C.llama_n_ctx_seq(ptr)),
		nBatch:     int(C.llama_n_batch(ptr)),
		nUBatch:    int(C.llama_n_ubatch(ptr)),
		nSeqMax:    int(C.llama_n_seq_max(ptr)),
		nVocab:     m.nVocab,
		nEmbdOut:   int(C.llama_model_n_embd_out(m.ptr)),
		embeddings: opts.Embeddings,
		kvUnified:  opts.KVUnified,

		greedyInGraph: opts.GreedyInGraph && m.onCPU(),
	}
	C.llama_set_batch_invariant(ptr, C.bool(opts.BatchInvariant))
	C.llama_set_argmax_outputs(ptr, C.bool(c.greedyInGraph))
	// Logits are read between decodes only (Logits copies them out, Sample reads them in
	// place), so they may stay in the backend's output tensor: a decode of 8 sequences
	// over a 32,000-token vocabulary copied 1 MB a step (ecotune's llama.cpp patch 0020).
	C.llama_set_logits_in_place(ptr, true)
	if err := c.attachPools(threads, threadsBatch); err != nil {
		C.llama_free(ptr)
		return nil, err
	}
	m.addContext(c)
	return c, nil
}

// attachPools gives the context thread pools of the given sizes, freeing any it had.
// The caller holds c.mu (or owns c alone).
func (c *Context) attachPools(threads, threadsBatch int) error {
	newPool := func(n int) *C.struct_ggml_threadpool {
		params := C.ggml_threadpool_params_default(C.int(n))
		return C.ggml_threadpool_new(&params)
	}
	pool := newPool(threads)
	if pool == nil {
		return fmt.Errorf("bindings: could not start a pool of %d threads", threads)
	}
	poolBatch := pool
	if threadsBatch != threads {
		if poolBatch = newPool(threadsBatch); poolBatch == nil {
			C.ggml_threadpool_free(pool)
			return fmt.Errorf("bindings: could not start a pool of %d threads", threadsBatch)
		}
	}
	C.llama_attach_threadpool(c.ptr, pool, poolBatch)
	c.freePools()
	c.pool, c.poolBatch = pool, poolBatch
	return nil
}

// freePools frees the thread pools; the context must no longer use them (detached or freed).
func (c *Context) freePools() {
	if c.poolBatch != nil && c.poolBatch != c.pool {
		C.ggml_threadpool_free(c.poolBatch)
	}
	if c.pool != nil {
		C.ggml_threadpool_free(c.pool)
	}
	c.pool, c.poolBatch = nil, nil
}

// Close frees the context. It is idempotent and safe on a nil *Context.
func (c *Context) Close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	if c.ptr == nil {
		c.mu.Unlock()
		return nil
	}
	if c.dec != nil {
		c.dec.close() // idle: every Decode waited for its own
		c.dec = nil
	}
	C.llama_free(c.ptr)
	c.freePools() // after the context, which computes with them until it is freed
	c.ptr = nil
	c.outputs, c.adapters = nil, nil
	c.mu.Unlock()
	c.model.removeContext(c)
	return nil
}

// lock locks the context and reports ErrClosed when it is closed; on success the caller
// must call c.mu.Unlock.
func (c *Context) lock() error {
	if c == nil {
		return ErrClosed
	}
	c.mu.Lock()
	if c.ptr == nil {
		c.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Model returns the model the context was created on.
func (c *Context) Model() *Model { return c.model }

// NCtx returns the context length in tokens actually allocated.
func (c *Context) NCtx() int { return c.nCtx }

// NCtxSeq returns how many tokens one sequence can hold (NCtx unless sequences split it).
func (c *Context) NCtxSeq() int { return c.nCtxSeq }

// NBatch returns the most tokens one Decode accepts.
func (c *Context) NBatch() int { return c.nBatch }

// NUBatch returns the physical micro-batch size.
func (c *Context) NUBatch() int { return c.nUBatch }

// NSeqMax returns the number of distinct sequences the context holds.
func (c *Context) NSeqMax() int { return c.nSeqMax }

// SetThreads changes the thread counts for single-token and batch decoding.
func (c *Context) SetThreads(threads, threadsBatch int) error {
	if threads <= 0 || threadsBatch <= 0 {
		return fmt.Errorf("bindings: thread counts must be positive, got %d and %d", threads, threadsBatch)
	}
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	C.llama_set_n_threads(c.ptr, C.int32_t(threads), C.int32_t(threadsBatch))
	return c.attachPools(threads, threadsBatch)
}

// Decode runs the model on the batch, appending its tokens to the context's memory. It
// returns ErrKVCacheFull when no memory slot fits the batch (nothing changed),
// ErrAborted, or a *DecodeError. The batch is checked in Go first: tokens inside the
// vocabulary, sequence ids below NSeqMax, at most NBatch tokens.
func (c *Context) Decode(b *Batch) error {
	if b == nil || b.closed {
		return fmt.Errorf("bindings: decode: batch: %w", ErrClosed)
	}
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.checkBatch(b); err != nil {
		return err
	}
	c.outputs, c.nOutputs = c.outputs[:0], 0
	code, err := c.decode(b)
	if err != nil {
		return err
	}
	if err := decodeError(code); err != nil {
		return err
	}
	v := b.view()
	for _, l := range v.logits {
		c.outputs = append(c.outputs, l != 0)
		if l != 0 {
			c.nOutputs++
		}
	}
	return nil
}

// decode calls llama_decode on the context's decoder thread (see decoder), or on the
// caller's when onCaller is set. The caller holds c.mu.
func (c *Context) decode(b *Batch) (int32, error) {
	if !c.onCaller && c.dec == nil {
		var err error
		if c.dec, err = newDecoder(c.ptr); err != nil {
			c.onCaller = true // no thread could start: decode here from now on
		}
	}
	if !c.onCaller {
		return c.dec.decode(b.c)
	}
	return int32(C.llama_decode(c.ptr, b.c)), nil
}

// checkBatch validates a batch against the context before it reaches llama_decode.
func (c *Context) checkBatch(b *Batch) error {
	v := b.view()
	if len(v.tokens) == 0 {
		return fmt.Errorf("bindings: decode: empty batch")
	}
	if len(v.tokens) > c.nBatch {
		return fmt.Errorf("bindings: decode: batch of %d tokens exceeds NBatch %d; split it or raise ContextOptions.NBatch", len(v.tokens), c.nBatch)
	}
	for i, t := range v.tokens {
		if t < 0 || int(t) >= c.nVocab {
			return fmt.Errorf("bindings: decode: batch token %d is %d, outside the vocabulary [0, %d)", i, t, c.nVocab)
		}
		for _, s := range unsafe.Slice(v.seqIDs[i], v.nSeq[i]) {
			if s < 0 || int(s) >= c.nSeqMax {
				return fmt.Errorf("bindings: decode: batch token %d has sequence id %d, outside [0, %d); raise ContextOptions.NSeqMax", i, s, c.nSeqMax)
			}
		}
	}
	return nil
}

// outputRow checks that the last Decode produced an output for batch index i (negative
// i counts outputs from the end, -1 being the last).
func (c *Context) outputRow(i int) error {
	if i >= 0 {
		if i < len(c.outputs) && c.outputs[i] {
			return nil
		}
		return fmt.Errorf("bindings: batch index %d has no output: set its logits flag in Batch.Add before Decode", i)
	}
	if -i <= c.nOutputs {
		return nil
	}
	return fmt.Errorf("bindings: output %d requested but the last Decode produced %d outputs", i, c.nOutputs)
}

// Logits returns a copy of the logits (one per vocabulary token) that the last Decode
// computed for batch index i; negative i counts outputs from the end (-1 is the last).
func (c *Context) Logits(i int) ([]float32, error) {
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if err := c.outputRow(i); err != nil {
		return nil, err
	}
	p := C.llama_get_logits_ith(c.ptr, C.int32_t(i))
	if p == nil {
		return nil, fmt.Errorf("bindings: no logits for batch index %d", i)
	}
	return append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(p)), c.nVocab)...), nil
}

// Embeddings returns a copy of the output embedding the last Decode computed for batch
// index i (negative counts from the end); the context needs ContextOptions.Embeddings.
func (c *Context) Embeddings(i int) ([]float32, error) {
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if !c.embeddings {
		return nil, fmt.Errorf("bindings: embeddings need a context created with ContextOptions.Embeddings")
	}
	if err := c.outputRow(i); err != nil {
		return nil, err
	}
	p := C.llama_get_embeddings_ith(c.ptr, C.int32_t(i))
	if p == nil {
		return nil, fmt.Errorf("bindings: no embeddings for batch index %d", i)
	}
	return append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(p)), c.nEmbdOut)...), nil
}
