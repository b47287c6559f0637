#!/usr/bin/env bash
# gpu-check.sh runs, in one go on a machine with an NVIDIA GPU and the CUDA toolkit,
# the checks issues 2 and 4 ask of a GPU: the CUDA build, ggml's op tests on the GPU,
# the trainer's tests with every model on the GPU (QLoRA's node placement counted), and
# LoRA and QLoRA tokens/s on a 1B-class llama shape against llama-bench on the same GPU.
# Logs go to $OUT (default out/gpu-check); a summary is printed. See docs/gpu.md.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/gpu-check}
mkdir -p "$out"
step() { printf '\n== %s\n' "$*"; }

step "GPU"
nvidia-smi 2>&1 | tee "$out/nvidia-smi.txt" | head -15

step "make CUDA=1 build"
if ! make CUDA=1 build >"$out/build.txt" 2>&1; then
	tail -40 "$out/build.txt"
	exit 1
fi
tail -2 "$out/build.txt"

step "ggml op tests (CPU and every GPU)"
go test -tags cuda -count=1 -v -run 'MulMat|Elementwise|Rope|Attention|OutProds' ./ggml >"$out/ggml-test.txt" 2>&1
echo "exit $?"; grep -E '^(--- FAIL|ok|FAIL)' "$out/ggml-test.txt"; grep -c -- '--- PASS: .*/CUDA' "$out/ggml-test.txt" | sed 's/^/CUDA cases passed: /'

step "trainer tests, models on the GPU (ECOTUNE_TEST_GPU=1)"
ECOTUNE_TEST_GPU=1 go test -tags cuda -count=1 -v ./trainer >"$out/trainer-test.txt" 2>&1
echo "exit $?"; grep -E '^(--- FAIL|ok|FAIL)' "$out/trainer-test.txt"; grep 'step graph placement' "$out/trainer-test.txt"

step "LoRA and QLoRA tokens/s, 1B-class shape"
vocab=third_party/llama.cpp/models/ggml-vocab-llama-spm.gguf
bin/ecotune init --arch llama --dims n_embd=2048,n_layer=16,n_head=32,n_head_kv=8,n_ff=8192,n_ctx=2048 \
	--vocab "$vocab" --type f16 -o "$out/1b-f16.gguf" >"$out/bench.txt" 2>&1
bin/ecotune quantize "$out/1b-f16.gguf" "$out/1b-q4_k.gguf" --type q4_k >>"$out/bench.txt" 2>&1
for m in 1b-f16 1b-q4_k; do
	bin/ecotune bench --model "$out/$m.gguf" --gpu --steps 4 --profile --tools build/cuda/bin 2>&1 | tee -a "$out/bench.txt" | grep -A3 '^| model'
done
