#!/usr/bin/env bash
# gpu-check.sh runs, on a machine with an NVIDIA GPU and the CUDA toolkit, the checks issues 2
# and 4 ask of a GPU: the CUDA build, ggml's op tests on the GPU, the trainer's tests with every
# model on the GPU (QLoRA's node placement counted), and LoRA and QLoRA tokens/s on a 1B-class
# llama shape against llama-bench on the same GPU. See docs/gpu.md.
#
# Where Go is missing (the device machines have no Go and no network), it first unpacks the
# kit that scripts/gpu-kit.sh made: carry .gpu-kit with the working tree.
#
# Usage: scripts/gpu-check.sh [build] [test] [bench]   (all three when none is named)
# Logs go to $OUT (default out/gpu-check); a summary with each step's seconds is printed.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out=${OUT:-out/gpu-check}
mkdir -p "$out"
steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=(build test bench)
step() { printf '\n== %s (at %ds)\n' "$*" "$SECONDS"; }
die() { echo "scripts/gpu-check.sh: $*" >&2; exit 1; }

# setup makes Go, the dependencies and llama.cpp's source available, from .gpu-kit where they
# are missing, and points cgo at the CUDA toolkit. The test models are in testdata/.
setup() {
	local kit="$root/.gpu-kit"
	if ! command -v go >/dev/null 2>&1; then
		# No Go, so no module downloads either: the kit's toolchain and vendored modules.
		[[ -f "$kit/go.tar.xz" && -f "$kit/vendor.tar.xz" ]] || die "no Go here and no .gpu-kit (make it with make gpu-kit)"
		if [[ ! -x /tmp/ecotune-go/bin/go ]]; then
			mkdir -p /tmp/ecotune-go && tar -C /tmp/ecotune-go -xJf "$kit/go.tar.xz" || die "cannot unpack Go"
		fi
		export PATH="/tmp/ecotune-go/bin:$PATH" GOTOOLCHAIN=local GOFLAGS=-mod=vendor
		[[ -d vendor ]] || tar -xJf "$kit/vendor.tar.xz" || die "cannot unpack the vendored modules"
	fi
	if [[ ! -e third_party/llama.cpp && -f "$kit/llama.cpp.tar.xz" ]]; then
		tar -C third_party -xJf "$kit/llama.cpp.tar.xz" || die "cannot unpack llama.cpp"
	fi
	local nvcc cuda
	nvcc="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
	[[ -x "$nvcc" ]] || die "no nvcc: this needs the CUDA toolkit"
	cuda="$(dirname "$(dirname "$(readlink -f "$nvcc")")")"
	export PATH="$(dirname "$nvcc"):$PATH"
	# Toolkits keep their libraries in lib64 (NVIDIA's packages), lib (pip's) or under
	# targets/; the binaries find libcudart and libcublas at run time through the rpath.
	local d ldflags=""
	for d in "$cuda/lib64" "$cuda/lib" "$cuda/targets/x86_64-linux/lib"; do
		[[ -d "$d" ]] && ldflags+=" -L$d -L$d/stubs -Wl,-rpath,$d"
	done
	export CGO_CFLAGS="-I$cuda/include ${CGO_CFLAGS:-}"
	export CGO_LDFLAGS="${ldflags# } ${CGO_LDFLAGS:-}"
	[[ -d /usr/local/nvidia/lib64 ]] && export LD_LIBRARY_PATH="/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
	go version
	nvcc --version | tail -1
}

build() {
	step "CUDA build of llama.cpp (scripts/build-native.sh cuda) and bin/ecotune"
	# Not `make CUDA=1 build`: its deps step would try apt-get on a machine without network.
	# Without FlashAttention's kernels (CUDA_FA=0), which training does not use and without
	# which nvcc needs a quarter less time: device time is short. CUDA_FA=1 builds them.
	if ! CUDA_FA="${CUDA_FA:-0}" scripts/build-native.sh cuda >"$out/build.txt" 2>&1; then
		tail -40 "$out/build.txt"
		die "the CUDA build failed (log: $out/build.txt)"
	fi
	go build -tags cuda -o bin/ecotune ./cmd/ecotune >>"$out/build.txt" 2>&1 || { tail -40 "$out/build.txt"; die "go build failed"; }
	tail -1 "$out/build.txt"
}

tests() {
	step "ggml op tests (CPU and every GPU)"
	go test -tags cuda -vet=off -count=1 -v ./ggml >"$out/ggml-test.txt" 2>&1
	echo "exit $?"
	grep -E '^(--- FAIL|ok|FAIL)' "$out/ggml-test.txt"
	echo "CUDA cases passed: $(grep -c -- '--- PASS: .*CUDA' "$out/ggml-test.txt")"

	step "trainer tests, models on the GPU (ECOTUNE_TEST_GPU=1)"
	ECOTUNE_TEST_GPU=1 go test -tags cuda -vet=off -count=1 -v ./trainer >"$out/trainer-test.txt" 2>&1
	echo "exit $?"
	grep -E '^(--- FAIL|ok|FAIL)' "$out/trainer-test.txt"
	grep 'step graph placement' "$out/trainer-test.txt"
}

bench() {
	step "LoRA and QLoRA tokens/s, 1B-class shape"
	local vocab=third_party/llama.cpp/models/ggml-vocab-llama-spm.gguf
	bin/ecotune init --arch llama --dims n_embd=2048,n_layer=16,n_head=32,n_head_kv=8,n_ff=8192,n_ctx=2048 \
		--vocab "$vocab" --type f16 -o /tmp/1b-f16.gguf >"$out/bench.txt" 2>&1 || { tail "$out/bench.txt"; die "init failed"; }
	bin/ecotune quantize /tmp/1b-f16.gguf /tmp/1b-q4_k.gguf --type q4_k >>"$out/bench.txt" 2>&1 || { tail "$out/bench.txt"; die "quantize failed"; }
	for m in 1b-f16 1b-q4_k; do
		bin/ecotune bench --model "/tmp/$m.gguf" --gpu --steps 4 --profile --tools build/cuda/bin 2>&1 |
			tee -a "$out/bench.txt" | grep -A3 '^| model'
	done
	# Whether the GPU's default compute dtype (f32: cuBLAS in TF32) should become bf16, as
	# on CPUs with AVX512-BF16.
	echo "Q4_K with --compute-dtype bf16:"
	bin/ecotune bench --model /tmp/1b-q4_k.gguf --gpu --steps 4 --compute-dtype bf16 --tools build/cuda/bin 2>&1 |
		tee -a "$out/bench.txt" | grep -A3 '^| model'
}

step "GPU"
nvidia-smi 2>&1 | tee "$out/nvidia-smi.txt" | head -15
setup
for s in "${steps[@]}"; do
	case "$s" in
	build) build ;;
	test) tests ;;
	bench) bench ;;
	*) die "unknown step '$s' (build, test or bench)" ;;
	esac
done
step "done"
