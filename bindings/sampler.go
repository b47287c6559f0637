package bindings

/*
#include <stdlib.h>
#include "llama.h"

// ecotune_argmax is llama.cpp's greedy pick over n > 0 logits: the first of the largest
// (llama_sampler_greedy_apply compares each with the one selected so far, so a NaN first
// logit stays selected and later NaNs never are). ARGMAX_LANES lanes each keep the first
// of their largest, independently, so that the compiler vectorizes the scan; the largest
// of the lanes' values, the lowest index among equals, is then the first of the largest.
// GCC vectorizes it at -O3 only (cgo builds -O2), and cgo builds for the x86-64 baseline
// (SSE2), so on x86 GCC also builds AVX2 and AVX-512 copies, picked at load time by the
// CPU; 32 lanes there are two or four independent vector chains, which the compare and
// blend's latency needed. 32,000 logits just copied (Zen 4): 12.5 µs with 16 lanes in
// SSE2, 5.5 with 32 in AVX2, 3.4 in AVX-512; an 8-row decode step samples 8 of them.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ARGMAX_LANES 32
__attribute__((optimize("O3"), target_clones("avx512f", "avx2", "default")))
#else
#define ARGMAX_LANES 16
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("O3")))
#endif
#endif
static int32_t ecotune_argmax(const float * l, int32_t n) {
	if (l[0] != l[0]) {
		return 0;
	}
	float m[ARGMAX_LANES];
	int32_t at[ARGMAX_LANES];
	for (int j = 0; j < ARGMAX_LANES; j++) {
		m[j] = l[0];
		at[j] = 0;
	}
	int32_t i = 0;
	for (; i + ARGMAX_LANES <= n; i += ARGMAX_LANES) {
		for (int j = 0; j < ARGMAX_LANES; j++) {
			const int gt = l[i + j] > m[j];
			m[j] = gt ? l[i + j] : m[j];
			at[j] = gt ? i + j : at[j];
		}
	}
	float best = m[0];
	int32_t sel = at[0];
	for (int j = 1; j < ARGMAX_LANES; j++) {
		if (m[j] > best || (m[j] == best && at[j] < sel)) {
			best = m[j];
			sel = at[j];
		}
	}
	for (; i < n; i++) {
		if (l[i] > best) {
			best = l[i];
			sel = i;
		}
	}
	return sel;
}
*/
import "C"

import (
	"fmt"
	"strings"
	"sync"
	"unsafe"
)

// RandomSeed asks the sampler to draw a random seed (LLAMA_DEFAULT_SEED).
const RandomSeed uint32 = C.LLAMA_DEFAULT_SEED

// SamplerOptions configures a sampler chain. The zero value is greedy decoding with no
// penalties. Fields at their zero value leave their stage out of the chain.
type SamplerOptions struct {
	Temperature      float32 // ≤ 0: greedy (always the most likely token); otherwise logits are divided by it
	TopK             int     // keep the K most likely tokens; 0 = off
	TopP             float32 // keep the smallest set whose probability reaches P; 0 or ≥ 1 = off
	MinP             float32 // drop tokens less likely than MinP × the top one; 0 = off
	RepeatPenalty    float32 // divide logits of recent tokens by it; 0 or 1 = off
	RepeatLastN      int     // how many recent tokens the penalties look at; 0 = 64 when a penalty is set, -1 = none
	FrequencyPenalty float32 // subtract count × it from recent tokens' logits; 0 = off
	PresencePenalty  float32 // subtract it from logits of tokens seen recently; 0 = off
	Seed             uint32  // seed of the final random draw; RandomSeed for a random one
	// Grammar, when set, is a GBNF grammar (start symbol "root") every generated token must
	// keep the output inside, e.g. JSONGrammar; llama.cpp's grammar sampler enforces it.
	Grammar string
}

// defaultRepeatLastN is llama.cpp's default penalty window (common_params_sampling).
const defaultRepeatLastN = 64

// Sampler picks the next token from a context's logits: the owner of a llama_sampler
// chain (penalties, top-k, top-p, min-p, temperature, then a greedy or seeded random
// pick). It keeps the history its penalties need; Reset clears it. Close frees it.
type Sampler struct {
	mu     sync.Mutex
	ptr    *C.struct_llama_sampler
	nVocab int
	// history is the chain index of the penalties stage, or -1: Accept feeds only that
	// stage, so prompt tokens reach the penalties but never the grammar, which must see
	// only the output it constrains.
	history int32
	// greedy is set when the chain is the greedy pick alone, which keeps no state: Sample
	// then takes the argmax of the logits itself, where llama_sampler_sample first copies
	// every logit into a candidate array (see BenchmarkGreedySample).
	greedy bool
}

// NewSampler builds a sampler for m's vocabulary. The caller owns it and must Close it.
func NewSampler(m *Model, opts SamplerOptions) (*Sampler, error) {
	if err := m.rlock(); err != nil {
		return nil, err
	}
	// Held to the end: the grammar sampler reads the vocabulary while it is built.
	defer m.mu.RUnlock()
	nVocab := m.nVocab
	if opts.TopK < 0 || opts.TopP < 0 || opts.MinP < 0 || opts.RepeatPenalty < 0 || opts.RepeatLastN < -1 {
		return nil, fmt.Errorf("bindings: sampler options must not be negative: %+v", opts)
	}

	if strings.IndexByte(opts.Grammar, 0) >= 0 {
		return nil, fmt.Errorf("bindings: sampler grammar contains a NUL byte")
	}

	chain := C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
	// The chain owns every sampler added to it and frees them with itself.
	add := func(s *C.struct_llama_sampler) { C.llama_sampler_chain_add(chain, s) }
	history := int32(-1)
	if opts.Grammar != "" {
		// First in the chain, so the later stages only ever see tokens the grammar allows.
		gs, root := C.CString(opts.Grammar), C.CString("root")
		defer C.free(unsafe.Pointer(gs))
		defer C.free(unsafe.Pointer(root))
		g := C.llama_sampler_init_grammar(m.vocab, gs, root)
		if g == nil {
			C.llama_sampler_free(chain)
			return nil, fmt.Errorf("bindings: sampler grammar does not parse as GBNF (llama.cpp's log says where)")
		}
		add(g)
	}

	repeat := opts.RepeatPenalty
	if repeat == 0 {
		repeat = 1
	}
	if repeat != 1 || opts.FrequencyPenalty != 0 || opts.PresencePenalty != 0 {
		lastN := opts.RepeatLastN
		switch lastN {
		case 0:
			lastN = defaultRepeatLastN
		case -1:
			lastN = 0
		}
		history = int32(C.llama_sampler_chain_n(chain))
		add(C.llama_sampler_init_penalties(C.int32_t(nVocab), C.int32_t(lastN), C.float(repeat),
			C.float(opts.FrequencyPenalty), C.float(opts.PresencePenalty)))
	}
	if opts.Temperature <= 0 {
		add(C.llama_sampler_init_greedy())
	} else {
		if opts.TopK > 0 {
			add(C.llama_sampler_init_top_k(C.int32_t(opts.TopK)))
		}
		if opts.TopP > 0 && opts.TopP < 1 {
			add(C.llama_sampler_init_top_p(C.float(opts.TopP), 1))
		}
		if opts.MinP > 0 {
			add(C.llama_sampler_init_min_p(C.float(opts.MinP), 1))
		}
		add(C.llama_sampler_init_temp(C.float(opts.Temperature)))
		add(C.llama_sampler_init_dist(C.uint32_t(opts.Seed)))
	}
	greedy := opts.Temperature <= 0 && history < 0 && opts.Grammar == ""
	return &Sampler{ptr: chain, nVocab: nVocab, history: history, greedy: greedy}, nil
}

// Close frees the sampler. It is idempotent and safe on a nil *Sampler.
func (s *Sampler) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ptr != nil {
		C.llama_sampler_free(s.ptr)
		s.ptr = nil
	}
	return nil
}

// lock locks the sampler and reports ErrClosed when it is closed; on success the caller
// must call s.mu.Unlock.
func (s *Sampler) lock() error {
	if s == nil {
		return ErrClosed
	}
	s.mu.Lock()
	if s.ptr == nil {
		s.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Sample picks a token from the logits the last Decode on c computed for batch index idx
// (negative counts outputs from the end) and accepts it into the sampler's history.
func (s *Sampler) Sample(c *Context, idx int) (int32, error) {
	if err := c.lock(); err != nil {
		return NullToken, err
	}
	defer c.mu.Unlock()
	if err := s.lock(); err != nil {
		return NullToken, err
	}
	defer s.mu.Unlock()
	if s.nVocab != c.nVocab {
		return NullToken, fmt.Errorf("bindings: sampler built for a %d-token vocabulary used on a %d-token one", s.nVocab, c.nVocab)
	}
	// llama_sampler_sample asserts that the logits exist; check in Go first.
	if err := c.outputRow(idx); err != nil {
		return NullToken, err
	}
	if s.greedy {
		if c.greedyInGraph {
			// -1 where the graph did not find it (a decode of several graphs, say)
			if tok := C.llama_get_argmax_ith(c.ptr, C.int32_t(idx)); tok >= 0 {
				return int32(tok), nil
			}
		}
		p := C.llama_get_logits_ith(c.ptr, C.int32_t(idx))
		if p == nil {
			return NullToken, fmt.Errorf("bindings: no logits for batch index %d", idx)
		}
		return int32(C.ecotune_argmax(p, C.int32_t(s.nVocab))), nil
	}
	return int32(C.llama_sampler_sample(s.ptr, c.ptr, C.int32_t(idx))), nil
}

// graphArgmax is the greedy pick the last Decode's graph found for batch index idx
// (ContextOptions.GreedyInGraph), -1 where it found none; for tests.
func (c *Context) graphArgmax(idx int) int32 {
	if err := c.lock(); err != nil {
		return -1
	}
	defer c.mu.Unlock()
	return int32(C.llama_get_argmax_ith(c.ptr, C.int32_t(idx)))
}

// argmax is ecotune_argmax over l (not empty), for tests.
func argmax(l []float32) int32 {
	return int32(C.ecotune_argmax((*C.float)(unsafe.Pointer(&l[0])), C.int32_t(len(l))))
}

// Accept adds tok to the penalties' history without sampling, e.g. to let them see the
// prompt. Tokens Sample picks are accepted by every stage already.
func (s *Sampler) Accept(tok int32) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if tok < 0 || int(tok) >= s.nVocab {
		return fmt.Errorf("bindings: token %d is outside the vocabulary [0, %d)", tok, s.nVocab)
	}
	if s.history >= 0 {
		C.llama_sampler_accept(C.llama_sampler_chain_get(s.ptr, C.int32_t(s.history)), C.llama_token(tok))
	}
	return nil
}

// Reset clears the sampler's history and restarts its random stream from the seed.
func (s *Sampler) Reset() error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	C.llama_sampler_reset(s.ptr)
	return nil
}
