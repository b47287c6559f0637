package bindings

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// llamaMaxLayers is the pinned llama.cpp's LLAMA_MAX_LAYERS: its per-layer arrays hold
// this many, and a larger block count overruns them.
const llamaMaxLayers = 512

// ggml's integer tensor types (enum ggml_type), which no weight llama.cpp loads has.
const (
	ggmlTypeF32 = 0
	ggmlTypeI8  = 24
	ggmlTypeI64 = 27
)

// checkModel refuses the hyper-parameters and tensor types that the pinned libllama does
// not refuse itself but asserts on while loading or decoding, so that a Go program that
// loads a model directly gets an error naming the field instead of an aborted process
// (the commands check models more fully first, with trainer.CheckModel).
func checkModel(h *ggufHeader, arch string) error {
	blocks := 0 // 1 + the highest blk.N of any tensor
	for _, t := range h.tensors {
		if t.typ >= ggmlTypeI8 && t.typ <= ggmlTypeI64 {
			return invalidf("tensor %s has an integer type (%d), which no llama.cpp weight has", t.name, t.typ)
		}
		if t.ne[1] == 1 && t.ne[2] == 1 && t.ne[3] == 1 && t.typ != ggmlTypeF32 {
			return invalidf("tensor %s is a vector of type %d; llama.cpp needs norm weights and biases in f32", t.name, t.typ)
		}
		if rest, ok := strings.CutPrefix(t.name, "blk."); ok {
			if n, err := strconv.Atoi(rest[:max(0, strings.IndexByte(rest, '.'))]); err == nil && n >= blocks {
				blocks = n + 1
			}
		}
	}
	key := arch + ".block_count"
	if v, ok := h.kv[key]; ok {
		n, isInt := intValue(v)
		switch {
		case !isInt:
			return invalidf("%s is not an integer", key)
		case n < 1 || n > llamaMaxLayers:
			return invalidf("%s is %d; llama.cpp takes 1 to %d", key, n, llamaMaxLayers)
		case blocks > 0 && n > int64(blocks):
			return invalidf("%s is %d, but the file's tensors stop at blk.%d", key, n, blocks-1)
		}
	}
	for _, name := range []string{"layer_norm_rms_epsilon", "layer_norm_epsilon"} {
		key := arch + ".attention." + name
		if v, ok := h.kv[key]; ok {
			eps, isFloat := floatValue(v)
			if !isFloat || math.IsNaN(eps) || math.IsInf(eps, 0) || eps <= 0 {
				return invalidf("%s is %v; it must be a positive number", key, v.val)
			}
		}
	}
	return nil
}

// intValue returns an integer metadata value.
func intValue(v ggufValue) (int64, bool) {
	switch x := v.val.(type) {
	case uint8:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case int16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int32:
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return math.MaxInt64, true
		}
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}

// floatValue returns a floating-point metadata value.
func floatValue(v ggufValue) (float64, bool) {
	switch x := v.val.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// String shows a metadata value in an error message.
func (v ggufValue) String() string { return fmt.Sprint(v.val) }
