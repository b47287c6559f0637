package bindings

// This file holds only the functions exported to C: cgo forbids C definitions in the
// preamble of a file that uses //export, so the trampolines live apart from their users.

/*
#include <stdbool.h>
#include <string.h>
#include "llama.h"
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// goLlamaLog receives every llama.cpp and ggml log fragment (llama_log_set) and forwards
// it to the slog sink.
//
//export goLlamaLog
func goLlamaLog(level C.enum_ggml_log_level, text *C.char, _ unsafe.Pointer) {
	if text == nil {
		return
	}
	sink.write(int(level), C.GoBytes(unsafe.Pointer(text), C.int(C.strlen(text))))
}

// goLlamaProgress receives llama_model_params.progress_callback calls; userData points
// at a pinned cgo.Handle of the caller's ProgressFunc. Returning false cancels the load.
//
//export goLlamaProgress
func goLlamaProgress(progress C.float, userData unsafe.Pointer) C.bool {
	h := *(*cgo.Handle)(userData)
	fn := h.Value().(ProgressFunc)
	return C.bool(fn(float32(progress)))
}
