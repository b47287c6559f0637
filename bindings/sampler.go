package bindings

/*
#include <stdlib.h>
#include "llama.h"
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
	return &Sampler{ptr: chain, nVocab: nVocab, history: history}, nil
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
	return int32(C.llama_sampler_sample(s.ptr, c.ptr, C.int32_t(idx))), nil
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
