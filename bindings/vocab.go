package bindings

/*
#include "llama.h"
*/
import "C"

import "fmt"

// NullToken is llama.cpp's "no token" id (LLAMA_TOKEN_NULL), returned for special tokens
// a vocabulary does not define.
const NullToken int32 = C.LLAMA_TOKEN_NULL

// VocabSize returns the number of tokens in the vocabulary.
func (m *Model) VocabSize() int { return m.nVocab }

// BOS returns the beginning-of-sequence token, or NullToken.
func (m *Model) BOS() int32 { return m.bos }

// EOS returns the end-of-sequence token, or NullToken.
func (m *Model) EOS() int32 { return m.eos }

// EOT returns the end-of-turn token, or NullToken.
func (m *Model) EOT() int32 { return m.eot }

// NL returns the newline token, or NullToken.
func (m *Model) NL() int32 { return m.nl }

// AddBOS reports whether Tokenize with addSpecial prepends BOS for this vocabulary.
func (m *Model) AddBOS() bool { return m.addBOS }

// AddEOS reports whether Tokenize with addSpecial appends EOS for this vocabulary.
func (m *Model) AddEOS() bool { return m.addEOS }

// checkToken rejects ids outside the vocabulary before they reach C, where an
// out-of-range id indexes past llama.cpp's token table.
func (m *Model) checkToken(tok int32) error {
	if tok < 0 || int(tok) >= m.nVocab {
		return fmt.Errorf("bindings: token %d is outside the vocabulary [0, %d)", tok, m.nVocab)
	}
	return nil
}

// IsEOG reports whether tok ends generation (EOS, EOT and similar); false for ids
// outside the vocabulary and after Close.
func (m *Model) IsEOG(tok int32) bool {
	if m.checkToken(tok) != nil || m.rlock() != nil {
		return false
	}
	defer m.mu.RUnlock()
	return bool(C.llama_vocab_is_eog(m.vocab, C.llama_token(tok)))
}

// IsControl reports whether tok is a control token, which TokenToPiece renders only
// when asked for special tokens; false for ids outside the vocabulary and after Close.
func (m *Model) IsControl(tok int32) bool {
	if m.checkToken(tok) != nil || m.rlock() != nil {
		return false
	}
	defer m.mu.RUnlock()
	return bool(C.llama_vocab_is_control(m.vocab, C.llama_token(tok)))
}

// TokenText returns the vocabulary's raw text for tok (e.g. "▁Hello" in SentencePiece
// vocabularies), as stored in the GGUF, without decoding.
func (m *Model) TokenText(tok int32) (string, error) {
	if err := m.checkToken(tok); err != nil {
		return "", err
	}
	if err := m.rlock(); err != nil {
		return "", err
	}
	defer m.mu.RUnlock()
	return C.GoString(C.llama_vocab_get_text(m.vocab, C.llama_token(tok))), nil
}
