// Package trainer fine-tunes GGUF language models with LoRA (and QLoRA: LoRA on a
// quantized base) directly on ggml.
//
// A Model is a GGUF file loaded into a ggml weights buffer, described by an Arch (one
// small declarative file per architecture, listed in the table in archs.go: llama,
// qwen2, phi2, phi3, gemma2). Where ggml has no backward rule for an op an
// architecture needs (norm, gelu, tanh), the graph builds the same function from ops
// it can differentiate (autograd.go), so LoRA trains on every architecture. A LoRA
// holds trainable A/B pairs for chosen target modules in llama.cpp's adapter layout, so
// WriteAdapter produces a file llama.cpp loads with --lora. Train runs the loop: batches
// from a Dataset, masked cross-entropy, AdamW with a Go-computed learning-rate schedule,
// gradient accumulation and global-norm clipping, periodic validation with early
// stopping, metrics.jsonl, checkpoints and exact resumption.
//
//	m, err := trainer.LoadModel("base.gguf", trainer.ModelOptions{Threads: 2})
//	if err != nil {
//		return err
//	}
//	defer m.Close()
//	cfg := trainer.DefaultConfig()
//	cfg.LoRA.Rank, cfg.LoRA.Alpha = 8, 16
//	cfg.RunDir, cfg.SaveEvery = "out", 50 // out/checkpoint-<step>/ every 50 steps
//	cfg.Resume = restarting               // continue from out's newest checkpoint
//	res, err := trainer.Train(ctx, m, cfg, trainData, evalData)
//	...
//	err = res.LoRA.WriteAdapter("out/adapter.gguf")
//
// A checkpoint directory holds index.json (step, epoch, data order and position, both
// random streams, AdamW's step, the resolved Config, validation history), adapter.gguf
// (llama.cpp's format) and optimizer.bin (AdamW's moments). It is written to a
// temporary directory and renamed into place, so a killed process leaves the previous
// checkpoint intact; a resumed run repeats the uninterrupted run's losses exactly.
//
// Ownership: a Model owns its ggml backend, weights buffer and scheduler; a LoRA owns
// its own context and buffer; both must be closed, LoRA first.
package trainer
