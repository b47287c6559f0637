//go:build cgo

package ggml

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by methods of an object (or of a tensor of a context) after Close.
var ErrClosed = errors.New("ggml: use of closed object")

// ErrOutOfMemory is wrapped by errors from allocations that a backend refused.
var ErrOutOfMemory = errors.New("ggml: out of memory")

// OpError describes an op whose operands ggml would reject (with an abort) and is what
// op methods panic with; Build recovers it as an error.
type OpError struct {
	Op  string
	Msg string
}

func (e *OpError) Error() string { return fmt.Sprintf("ggml: %s: %s", e.Op, e.Msg) }

func opErrorf(op, format string, args ...any) {
	panic(&OpError{Op: op, Msg: fmt.Sprintf(format, args...)})
}

// Build runs f, which builds tensors and graphs, and returns an op's *OpError (or
// ErrClosed) as an error instead of a panic. Other panics pass through.
func Build(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			switch e := r.(type) {
			case *OpError:
				err = e
			case error:
				if errors.Is(e, ErrClosed) {
					err = e
					return
				}
				panic(r)
			default:
				panic(r)
			}
		}
	}()
	f()
	return nil
}

// StatusError is a non-success ggml_status from a computation.
type StatusError struct {
	Op     string
	Status int
}

func (e *StatusError) Error() string {
	name := map[int]string{-2: "alloc failed", -1: "failed", 1: "aborted"}[e.Status]
	if name == "" {
		name = "unknown status"
	}
	return fmt.Sprintf("ggml: %s: %s (status %d)", e.Op, name, e.Status)
}

func (e *StatusError) Unwrap() error {
	if e.Status == -2 {
		return ErrOutOfMemory
	}
	return nil
}
