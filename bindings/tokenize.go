package bindings

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"
)

// Tokenize converts text to token ids. addSpecial adds BOS/EOS where the vocabulary
// asks for them; parseSpecial lets text spell special tokens such as "<|im_start|>"
// (otherwise they are tokenized as plain text). Safe for concurrent use.
func (m *Model) Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	if len(text) > math.MaxInt32 {
		return nil, fmt.Errorf("bindings: tokenize: text of %d bytes exceeds llama.cpp's int32 limit", len(text))
	}
	if err := m.rlock(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()

	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	// A token covers at least one byte, plus BOS and EOS: this first guess rarely fails.
	toks := make([]int32, len(text)+2)
	for range 2 {
		n := C.llama_tokenize(m.vocab, ctext, C.int32_t(len(text)),
			(*C.llama_token)(unsafe.Pointer(&toks[0])), C.int32_t(len(toks)),
			C.bool(addSpecial), C.bool(parseSpecial))
		switch {
		case n == math.MinInt32:
			return nil, fmt.Errorf("bindings: tokenize: result overflows int32")
		case n >= 0:
			return toks[:n:n], nil
		default:
			// The negative count is the size llama.cpp needs; retry once with it.
			toks = make([]int32, -n)
		}
	}
	return nil, fmt.Errorf("bindings: tokenize: llama.cpp's result size changed between calls")
}

// TokenToPiece returns the text of one token. With special false, control tokens
// render as "". A piece may be part of a multi-byte UTF-8 character.
func (m *Model) TokenToPiece(tok int32, special bool) (string, error) {
	if err := m.checkToken(tok); err != nil {
		return "", err
	}
	if err := m.rlock(); err != nil {
		return "", err
	}
	defer m.mu.RUnlock()
	return m.piece(tok, special), nil
}

// piece is TokenToPiece without the checks; the caller holds m.mu for reading and has
// validated tok.
func (m *Model) piece(tok int32, special bool) string {
	var small [64]C.char
	n := C.llama_token_to_piece(m.vocab, C.llama_token(tok), &small[0], C.int32_t(len(small)), 0, C.bool(special))
	if n >= 0 {
		return C.GoStringN(&small[0], C.int(n))
	}
	big := make([]C.char, -n)
	n = C.llama_token_to_piece(m.vocab, C.llama_token(tok), &big[0], C.int32_t(len(big)), 0, C.bool(special))
	if n < 0 {
		return ""
	}
	return C.GoStringN(&big[0], C.int(n))
}

// Detokenize converts tokens back to text. removeSpecial drops the BOS/EOS the
// vocabulary adds; unparseSpecial renders special tokens as their text.
func (m *Model) Detokenize(tokens []int32, removeSpecial, unparseSpecial bool) (string, error) {
	for _, t := range tokens {
		if err := m.checkToken(t); err != nil {
			return "", err
		}
	}
	if err := m.rlock(); err != nil {
		return "", err
	}
	defer m.mu.RUnlock()
	if len(tokens) == 0 {
		return "", nil
	}
	if len(tokens) > math.MaxInt32 {
		return "", fmt.Errorf("bindings: detokenize: %d tokens exceed llama.cpp's int32 limit", len(tokens))
	}
	buf := make([]byte, 8*len(tokens)+16)
	for range 2 {
		n := C.llama_detokenize(m.vocab, (*C.llama_token)(unsafe.Pointer(&tokens[0])), C.int32_t(len(tokens)),
			(*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(min(len(buf), math.MaxInt32)),
			C.bool(removeSpecial), C.bool(unparseSpecial))
		if n >= 0 {
			return string(buf[:n]), nil
		}
		buf = make([]byte, -n)
	}
	return "", fmt.Errorf("bindings: detokenize: llama.cpp's result size changed between calls")
}
