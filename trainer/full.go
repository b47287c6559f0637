package trainer

import (
	"fmt"

	"github.com/ecotune/ecotune/ggml"
	"github.com/ecotune/ecotune/gguf"
)

// Training methods (Config.Method).
const (
	MethodLoRA = "lora" // adapters on a frozen base (the default)
	MethodFull = "full" // every weight of an F32/F16/BF16 model, loaded with ModelOptions.Trainable
)

// trainable is what a run updates and saves: a LoRA's adapters, or the model itself.
type trainable interface {
	params() []*ggml.Tensor
	// write saves the trained tensors as a file llama.cpp loads as it is.
	write(path string) error
	// file is the name that file has in a run or checkpoint directory.
	file() string
}

func (l *LoRA) write(path string) error { return l.WriteAdapter(path) }
func (l *LoRA) file() string            { return checkpointAdapter }

// fullWeights trains every weight of a Model loaded with Trainable.
type fullWeights struct{ m *Model }

func (f fullWeights) params() []*ggml.Tensor  { return f.m.order }
func (f fullWeights) write(path string) error { return f.m.WriteModel(path) }
func (f fullWeights) file() string            { return checkpointModel }

// WriteModel writes the model with its current weights: the source file's metadata
// (tokenizer, chat template, hyper-parameters) and every tensor as the model holds it
// (F32 after full fine-tuning), plus ecotune.* provenance keys. llama.cpp loads it.
func (m *Model) WriteModel(path string) error {
	if m.ctx == nil {
		return fmt.Errorf("trainer: write model %s: the model is closed", path)
	}
	src, err := gguf.Open(m.Path)
	if err != nil {
		return fmt.Errorf("trainer: write model: %w", err)
	}
	defer src.Close()
	meta := &gguf.Metadata{}
	for key, v := range src.Meta.All() {
		meta.Set(key, v)
	}
	meta.Set("general.file_type", gguf.ValueOf(uint32(0))) // LLAMA_FTYPE_ALL_F32
	meta.Set("ecotune.trained_from", gguf.ValueOf(m.Path))
	held := map[string]*ggml.Tensor{}
	for _, t := range m.order {
		held[t.Name()] = t
	}
	b := &gguf.Builder{Meta: meta}
	for _, info := range src.Tensors {
		t, ok := held[info.Name]
		if !ok {
			// A tensor the architecture does not use (rope_freqs, ...): copied as it is.
			data, err := src.Data(info.Name)
			if err != nil {
				return fmt.Errorf("trainer: write model: %w", err)
			}
			b.Tensors = append(b.Tensors, gguf.Tensor{TensorInfo: gguf.TensorInfo{Name: info.Name, Dims: info.Dims, Type: info.Type}, Data: gguf.DataBytes(data)})
			continue
		}
		b.Tensors = append(b.Tensors, gguf.Tensor{
			TensorInfo: gguf.TensorInfo{Name: info.Name, Dims: info.Dims, Type: gguf.Type(t.Type())},
			Data:       tensorData(t),
		})
	}
	if err := b.WriteFile(path); err != nil {
		return fmt.Errorf("trainer: write model: %w", err)
	}
	return nil
}
