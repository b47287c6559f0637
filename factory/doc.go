// Package factory writes random-init model GGUFs that llama.cpp loads: the
// hyper-parameter keys and tensor names and shapes its loader expects for
// each architecture (llama, qwen2, phi2, phi3, gemma2), and the tokenizer
// copied from any GGUF. They are fixtures for tests and benchmarks: speed
// does not depend on the weights' values.
//
// Each architecture is one small declarative table in its own file (llama.go,
// qwen2.go, ...), listing the tensors before the blocks, in every block and
// after them; architectures (arch.go) lists them all.
//
//	err := factory.Init(factory.Spec{
//		Arch: "llama", Embd: 256, Layers: 2, Heads: 4, HeadsKV: 2, FF: 768,
//		VocabFile: "third_party/llama.cpp/models/ggml-vocab-llama-spm.gguf",
//		Seed:      1,
//	}, "tiny.gguf")
//
// Weights are N(0, 0.02²) by default, norm weights 1 and biases 0; each
// tensor's values depend only on the seed and its name.
package factory
