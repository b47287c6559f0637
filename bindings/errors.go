//go:build cgo

package bindings

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by every method called on an object after its Close.
var ErrClosed = errors.New("bindings: use of closed object")

// ErrKVCacheFull reports that llama_decode found no KV cache slot for a batch (its return
// code 1); the context is unchanged, so a smaller batch or a larger ContextOptions.NCtx,
// or freeing sequences with SeqRemove, lets the caller try again.
var ErrKVCacheFull = errors.New("bindings: no KV cache slot for the batch; use a smaller batch, a larger ContextOptions.NCtx, or free sequences")

// ErrAborted reports that llama_decode was aborted (its return code 2); the ubatches
// processed before the abort stay in the context's memory.
var ErrAborted = errors.New("bindings: decode aborted")

// ErrInvalidGGUF is wrapped by every error about a file that is not a well-formed GGUF,
// so callers can tell a bad file from a failure inside llama.cpp with errors.Is.
var ErrInvalidGGUF = errors.New("not a valid GGUF file")

// ErrNoChatTemplate is returned by Model.ApplyChatTemplate when the model carries no
// tokenizer.chat_template; use ApplyChatTemplate with a named template instead.
var ErrNoChatTemplate = errors.New("bindings: model has no chat template; pass a named template such as \"chatml\" to ApplyChatTemplate")

// DecodeError is a llama_decode failure other than ErrKVCacheFull and ErrAborted: -1 for
// an invalid batch, below -1 for a fatal error.
type DecodeError struct {
	Code int32 // llama_decode's return value
}

// Error says what the code means and what to do next.
func (e *DecodeError) Error() string {
	if e.Code == -1 {
		return "bindings: llama_decode rejected the batch (code -1): check tokens, positions and sequence ids; llama.cpp's log says which"
	}
	return fmt.Sprintf("bindings: llama_decode failed (code %d); see llama.cpp's log", e.Code)
}

// decodeError maps llama_decode's return code to nil, a sentinel or a *DecodeError.
func decodeError(code int32) error {
	switch code {
	case 0:
		return nil
	case 1:
		return ErrKVCacheFull
	case 2:
		return ErrAborted
	default:
		return &DecodeError{Code: code}
	}
}

// ErrPartialRemove reports that the context's memory cannot drop part of a sequence
// (recurrent models keep one state per sequence); remove the whole sequence instead.
var ErrPartialRemove = errors.New("bindings: memory cannot remove part of a sequence; remove the whole sequence (p0 = p1 = -1)")
