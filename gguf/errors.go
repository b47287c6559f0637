package gguf

import "errors"

// Sentinel errors; test for them with errors.Is.
var (
	// ErrMalformed is matched by every error about a file's contents (a *FormatError).
	ErrMalformed = errors.New("malformed GGUF file")
	// ErrClosed is returned by methods of a File after Close.
	ErrClosed = errors.New("gguf: file is closed")
	// ErrKeyNotFound is wrapped by metadata getters when the key is absent.
	ErrKeyNotFound = errors.New("key not found")
	// ErrWrongType is wrapped by metadata getters when the key holds another type.
	ErrWrongType = errors.New("wrong metadata type")
	// ErrNotMapped is returned by File.Data for files parsed from an io.ReaderAt,
	// which have no bytes in memory to view; use File.Reader instead.
	ErrNotMapped = errors.New("gguf: tensor data is not mapped in memory (file came from Parse); use Reader")
	// ErrNoTensor is wrapped when a tensor name is not in the file.
	ErrNoTensor = errors.New("no such tensor")
)

// FormatError reports why a file is not valid GGUF: which file, which part of it
// (a key, a tensor, the header) and what is wrong.
type FormatError struct {
	File    string // path given to Open, or "" for Parse
	Context string // e.g. `tensor "blk.0.attn_q.weight"`, `key "general.alignment"`, "header"
	Err     error  // what is wrong; may wrap io.ErrUnexpectedEOF
}

// Error formats the error as "gguf: FILE: CONTEXT: problem".
func (e *FormatError) Error() string {
	s := "gguf: "
	if e.File != "" {
		s += e.File + ": "
	}
	if e.Context != "" {
		s += e.Context + ": "
	}
	return s + e.Err.Error()
}

// Unwrap returns the underlying cause.
func (e *FormatError) Unwrap() error { return e.Err }

// Is makes every FormatError match ErrMalformed.
func (e *FormatError) Is(target error) bool { return target == ErrMalformed }
