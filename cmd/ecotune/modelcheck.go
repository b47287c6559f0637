package main

import (
	"errors"
	"fmt"

	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/trainer"
)

// checkModelFile validates the GGUF model at path in Go before any C code, writer or
// external tool sees it: the format (gguf.Open), then what parts asks for
// (trainer.CheckModel). An architecture ecotune cannot train passes when
// unknownArchOK, for commands where llama.cpp may still run it. Errors name the file.
func checkModelFile(path string, parts trainer.CheckParts, unknownArchOK bool) error {
	f, err := gguf.Open(path)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	defer f.Close()
	if err := trainer.CheckModel(f, parts); err != nil {
		if unknownArchOK && errors.Is(err, trainer.ErrUnknownArch) {
			return nil
		}
		return fmt.Errorf("model %s: %w", path, err)
	}
	return nil
}
