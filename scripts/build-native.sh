#!/usr/bin/env bash
# Builds llama.cpp (ggml, libllama, oracle tools) into a cache outside the checkout, keyed by
# the pinned source, our CMakeLists.txt, the build options and this CPU's feature flags, then
# points build/<variant> at it. A fresh clone with a warm cache builds in seconds.
#
# Usage: scripts/build-native.sh cpu|cuda|cpu-arm64 [TOOL...]
# TOOLs (llama.cpp targets such as llama-server) are built into the same cache on demand.
# CUDA_ARCH (default 90) picks the GPU architecture; CUDA_FA=0 leaves out ggml's CUDA
# FlashAttention kernels (training does not use them; without them nvcc needs a quarter less time).
# MARCH (default native) is the CPU the build targets, as GCC's -march names it: MARCH=haswell
# builds AVX2 code on an AVX-512 machine, to measure what an AVX2 machine runs (see docs/bench.md).
# cpu-arm64 cross-compiles ggml and libllama (no tools) for linux/arm64 with Debian's
# aarch64-linux-gnu-gcc/g++, for ARM64_MARCH (default armv8.2-a+fp16+dotprod: Graviton2 and
# later, Ampere Altra, Apple silicon in a Linux VM); `make test-arm64` runs them under qemu
# (see docs/arm64.md).
set -euo pipefail

variant="${1:-cpu}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${ECOTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ecotune}"
jobs="${JOBS:-$(nproc)}"
cuda_arch="${CUDA_ARCH:-90}"

die() { echo "scripts/build-native.sh: $*" >&2; exit 1; }
# What cmake builds and which of its tools are kept (the cpu-arm64 variant builds fewer).
targets=(ecotune_native)
tools=(llama-completion llama-perplexity llama-quantize llama-export-lora llama-bench llama-finetune llama-tokenize
  ggml-rpc-server)
# Tools named after the variant are built on demand into the same cache (make bench asks
# for llama-server), so the build every test run needs stays small.
extra=("${@:2}")

"$root/third_party/fetch.sh"

march="${MARCH:-native}"
if [[ "$march" == native ]]; then
  opts=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON)
else
  # Without GGML_NATIVE ggml adds no instruction-set flags of its own (each GGML_AVX* is
  # off); its kernels follow the compiler's macros (__AVX2__, __AVX512F__, ...), as ours do.
  opts=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF "-DCMAKE_C_FLAGS=-march=$march" "-DCMAKE_CXX_FLAGS=-march=$march")
fi
case "$variant" in
  cpu) opts+=(-DGGML_CUDA=OFF) ;;
  cuda)
    command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]] ||
      die "CUDA=1 needs nvcc: install the CUDA toolkit (Debian: nvidia-cuda-toolkit) or put /usr/local/cuda/bin on PATH"
    [[ -x /usr/local/cuda/bin/nvcc ]] && export PATH="/usr/local/cuda/bin:$PATH"
    opts+=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$cuda_arch")
    [[ "${CUDA_FA:-1}" == 0 ]] && opts+=(-DGGML_CUDA_FA=OFF)
    nvcc_major="$(nvcc --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')"
    if [[ -n "$nvcc_major" && "$nvcc_major" -lt 12 ]]; then
      echo "scripts/build-native.sh: CUDA $nvcc_major.x: adding scripts/cuda11_compat.h (PDL off at run time)" >&2
      opts+=("-DCMAKE_CUDA_FLAGS=-include $root/scripts/cuda11_compat.h")
    fi
    ;;
  cpu-arm64)
    # A cross build: MARCH (this machine's CPU) does not apply; ARM64_MARCH names the target.
    # GGML_CPU_ARM_ARCH makes ggml-cpu's own -march the same as the one everything else gets.
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 ||
      die "cpu-arm64 needs aarch64-linux-gnu-gcc and -g++ (Debian: gcc-aarch64-linux-gnu g++-aarch64-linux-gnu)"
    arm64_march="${ARM64_MARCH:-armv8.2-a+fp16+dotprod}"
    opts=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_CUDA=OFF
      -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64
      -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++
      -DCMAKE_FIND_ROOT_PATH=/usr/aarch64-linux-gnu -DCMAKE_FIND_ROOT_PATH_MODE_PROGRAM=NEVER
      -DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY -DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY
      "-DGGML_CPU_ARM_ARCH=$arm64_march" "-DCMAKE_C_FLAGS=-march=$arm64_march" "-DCMAKE_CXX_FLAGS=-march=$arm64_march")
    # Only what the Go packages link: the oracle tools would double the build and cannot
    # run here anyway.
    targets=(llama ggml)
    tools=()
    ;;
  *) die "unknown variant '$variant' (cpu, cuda or cpu-arm64)" ;;
esac
if command -v ccache >/dev/null 2>&1; then
  opts+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  [[ "$variant" == cuda ]] && opts+=(-DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
fi
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)

cpuflags="$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || uname -m)"
# A cross build does not depend on the CPU that runs it, but on the cross compiler.
[[ "$variant" == cpu-arm64 ]] && cpuflags="cross $(aarch64-linux-gnu-gcc -dumpfullversion)"
# The checkout's path is left out of the key (a clone elsewhere shares the build); the files
# the options name are in it by content.
key="$( { cat "$root/third_party/llama.cpp.pin" "$root/CMakeLists.txt" "$root"/third_party/patches/*.patch; echo "${opts[*]//$root/<root>}" "$cpuflags"
  [[ "${opts[*]}" != *cuda11_compat.h* ]] || cat "$root/scripts/cuda11_compat.h"; } |
  sha256sum | cut -c1-16)"
out="$cache/build/$variant-$key"
link="$root/build/$variant"

if [[ ! -f "$out/.complete" ]]; then
  rm -rf "$out"
  mkdir -p "$out"
  echo "scripts/build-native.sh: building llama.cpp ($variant) into $out with $jobs jobs" >&2
  cmake -S "$root" -B "$out/cmake" "${generator[@]}" "${opts[@]}" >"$out/configure.log" 2>&1 ||
    { tail -n 40 "$out/configure.log" >&2; die "cmake configure failed (log: $out/configure.log)"; }
  cmake --build "$out/cmake" --target "${targets[@]}" -j "$jobs" ||
    die "cmake build failed"
  mkdir -p "$out/lib" "$out/bin" "$out/include"
  find "$out/cmake" -name '*.a' -exec cp {} "$out/lib/" \;
  for t in "${tools[@]}"; do
    cp "$out/cmake/bin/$t" "$out/bin/"
  done
  src="$root/third_party/llama.cpp"
  cp "$src"/include/*.h "$src"/ggml/include/*.h "$out/include/"
  printf '%s\n' "${opts[*]}" >"$out/options.txt"
  touch "$out/.complete"
fi

for t in "${extra[@]}"; do
  if [[ ! -x "$out/bin/$t" ]]; then
    echo "scripts/build-native.sh: building $t into $out" >&2
    cmake --build "$out/cmake" --target "$t" -j "$jobs" || die "cmake build of $t failed"
    cp "$out/cmake/bin/$t" "$out/bin/"
  fi
done

mkdir -p "$root/build"
if [[ "$(readlink "$link" 2>/dev/null || true)" != "$out" ]]; then
  rm -rf "$link"
  ln -s "$out" "$link"
fi
echo "scripts/build-native.sh: build/$variant -> $out" >&2
