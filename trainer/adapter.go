package trainer

import (
	"fmt"
	"io"
	"math"

	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
)

// WriteAdapter writes the LoRA as a llama.cpp adapter GGUF (general.type "adapter",
// adapter.type "lora", adapter.lora.alpha, the base model's architecture, and F32
// pairs <base>.lora_a ne=[n_in, r], <base>.lora_b ne=[r, n_out]), atomically.
// llama.cpp scales by alpha/r, so an rsLoRA adapter is written with alpha·√r, which
// gives the same scale.
func (l *LoRA) WriteAdapter(path string) error {
	if l == nil || l.ctx == nil {
		return fmt.Errorf("trainer: write adapter %s: the LoRA is closed", path)
	}
	alpha := float64(l.Config.Alpha)
	if l.Config.RSLoRA {
		alpha *= math.Sqrt(float64(l.Config.Rank))
	}
	meta := &gguf.Metadata{}
	meta.Set("general.architecture", gguf.ValueOf(l.Arch))
	meta.Set("general.type", gguf.ValueOf("adapter"))
	meta.Set("general.name", gguf.ValueOf("ecotune LoRA"))
	meta.Set("adapter.type", gguf.ValueOf("lora"))
	meta.Set("adapter.lora.alpha", gguf.ValueOf(float32(alpha)))
	if l.Config.TaskName != "" {
		meta.Set("adapter.lora.task_name", gguf.ValueOf(l.Config.TaskName))
	}
	meta.Set("ecotune.lora.rank", gguf.ValueOf(uint32(l.Config.Rank)))
	meta.Set("ecotune.lora.rslora", gguf.ValueOf(l.Config.RSLoRA))
	b := &gguf.Builder{Meta: meta}
	for _, t := range l.params() {
		dims := make([]int64, 2)
		dims[0], dims[1] = int64(t.Ne(0)), int64(t.Ne(1))
		b.Tensors = append(b.Tensors, gguf.Tensor{
			TensorInfo: gguf.TensorInfo{Name: t.Name(), Dims: dims, Type: gguf.TypeF32},
			Data:       tensorData(t),
		})
	}
	if err := b.WriteFile(path); err != nil {
		return fmt.Errorf("trainer: write adapter: %w", err)
	}
	return nil
}

// tensorData copies t's bytes out of its backend buffer when the writer reaches it, so
// a file is written with one tensor in Go memory at a time.
func tensorData(t *ggml.Tensor) gguf.DataFunc {
	return func(w io.Writer) error {
		data, err := t.Bytes()
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
}
