package main

import (
	"fmt"
	"os"

	"github.com/ecotune/ecotune/ggml"
)

// keepTransposed resolves --keep-transposed: on, off, or auto, which keeps the
// transposed weights (trainer.ModelOptions.KeepTransposed: faster LoRA steps for a
// second copy of the F32/F16/BF16 weights) when the model file is at most a quarter of the
// free memory of the device that holds the weights.
func keepTransposed(mode, model string, gpu bool) (bool, error) {
	switch mode {
	case "on":
		return true, nil
	case "off":
		return false, nil
	case "", "auto":
	default:
		return false, usagef("--keep-transposed %q: want auto, on or off", mode)
	}
	st, err := os.Stat(model)
	if err != nil {
		return false, fmt.Errorf("--keep-transposed auto: %w", err)
	}
	for _, d := range ggml.Devices() {
		if d.GPU == gpu && d.FreeBytes > 0 {
			return 4*uint64(st.Size()) <= d.FreeBytes, nil
		}
	}
	return false, nil
}
