#!/usr/bin/env bash
# Reproduces models/ecotune-env-base.weights.gguf, the demo's base model: a 4.9M-parameter
# llama-architecture model that ecotune pre-trains from random weights on the training
# split of data/environment (ChatML text, every token a target), with llama.cpp's Llama
# SentencePiece vocabulary. One thread, fixed seeds: the same binary gives the same file.
#
# Usage (from the repository root, after `make`): scripts/pretrain-demo-base.sh [OUT_DIR]
set -euo pipefail
out="${1:-out/pretrain}"
bin=bin/ecotune
vocab=third_party/llama.cpp/models/ggml-vocab-llama-spm.gguf
[[ -x "$bin" && -f "$vocab" ]] || { echo "run make first (needs $bin and $vocab)" >&2; exit 1; }
mkdir -p "$out"

"$bin" prepare data/environment -o "$out/data" --template chatml --seed 42 --quiet
"$bin" init --arch llama --dims n_embd=128,n_layer=4,n_head=4,n_head_kv=2,n_ff=384,n_ctx=512 \
  --tied --vocab "$vocab" --seed 1 --name ecotune-env-base -o "$out/init.gguf"
"$bin" train --method full -m "$out/init.gguf" --data "$out/data/train.jsonl" --val "$out/data/val.jsonl" \
  --train-on-inputs --out "$out/run" --steps 600 --batch 4 --seq-len 256 --lr 3e-3 --min-lr 3e-4 \
  --warmup 30 --weight-decay 0.01 --eval-every 100 --save-every 100 --seed 7 --threads 1
# The committed file: the trained weights in F16, without the tokenizer (the demo
# attaches llama.cpp's vocabulary again with `ecotune init --weights`).
"$bin" init --arch llama --dims n_embd=128,n_layer=4,n_head=4,n_head_kv=2,n_ff=384,n_ctx=512 \
  --tied --vocab-size 32000 --type f16 --weights "$out/run/model.gguf" --name ecotune-env-base \
  -o "$out/ecotune-env-base.weights.gguf"
echo "wrote $out/ecotune-env-base.weights.gguf (copy it to models/)"
