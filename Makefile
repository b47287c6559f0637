# ecotune: the two commands a fresh machine needs are `make demo` and `make test`.
# Both install missing build tools, fetch the pinned llama.cpp and build it first.

SHELL := /bin/bash
comma := ,
GO ?= go
CUDA ?= 0
VARIANT := $(if $(filter 1,$(CUDA)),cuda,cpu)
# MARCH=haswell (any GCC -march name) builds llama.cpp and ecotune's kernels for that CPU
# instead of this one: AVX2 code measured on an AVX-512 machine, say. The build tag
# ecotune_march leaves -march=native out of the ggml package; CGO_CFLAGS names the target.
MARCH ?= native
export MARCH
TAGS := $(if $(filter 1,$(CUDA)),cuda) $(if $(filter-out native,$(MARCH)),ecotune_march)
GOTAGS := $(if $(strip $(TAGS)),-tags $(subst $(eval) ,$(comma),$(strip $(TAGS))),)
ifneq ($(MARCH),native)
export CGO_CFLAGS := -O2 -g -march=$(MARCH)
endif
FUZZTIME ?= 100000x
# The fuzz targets beside gguf's FuzzRead (package:target[:executions]), each run by
# make test for FUZZCOUNT executions unless it names its own count; their seeds come from
# internal/hostile's corpus. The data readers write a file per execution, hence fewer.
FUZZCOUNT ?= 2000x
FUZZ_TARGETS := safetensors:FuzzParse bindings:FuzzCheckAdapter export:FuzzOpenAdapter \
	export:FuzzImportPEFT trainer:FuzzCheckModel config:FuzzParse data:FuzzParseJSON \
	data:FuzzReadJSONL:1000x data:FuzzReadJSON:1000x data:FuzzReadCSV:1000x \
	data:FuzzReadText:1000x data:FuzzReadParquet:1000x data:FuzzReadGzip:1000x
export CGO_ENABLED := 1
# The go command keys its build and test caches on its inputs, and the static libraries cgo
# links are not among them: after a change to llama.cpp's patches or options, `go build`
# kept a binary linked with the old libraries, and `go test` a cached result. Naming the
# native build's cache directory (keyed by the pin, the patches and the options) in
# CGO_LDFLAGS makes each llama.cpp build an input of its own. Expanded when a recipe runs,
# after `native` has pointed build/$(VARIANT) at it.
GOENV = CGO_LDFLAGS="-L$(shell readlink -f build/$(VARIANT))/lib $$CGO_LDFLAGS"

.PHONY: all help deps bench-deps native build test test-go fuzz demo bench gpu-kit clean

all: build

help:
	@echo "make demo      run the end-to-end demo on the bundled data (builds what it needs)"
	@echo "make test      run every test (builds what it needs; CUDA tests skip without a GPU)"
	@echo "make build     build bin/ecotune (CUDA=1 for the CUDA backend, CUDA_ARCH=90 default)"
	@echo "make bench     run the benchmarks (see BENCHMARKS.md; installs python3-torch for the PyTorch peer)"
	@echo "make native    only build llama.cpp/ggml into the cache (~/.cache/ecotune)"
	@echo "make gpu-kit   pack Go, the vendored modules and llama.cpp for a GPU machine without them (scripts/gpu-check.sh)"
	@echo "make clean     remove bin/ and build/ links (the cache stays)"
	@echo "make build-arm64  cross-build bin/ecotune-linux-arm64 (Debian's aarch64 GCC; docs/arm64.md)"
	@echo "make test-arm64   cross-build the ggml package's tests for arm64 and run them under qemu-aarch64"

# Build tools: Debian packages when we are root, otherwise say what is missing.
deps:
	@missing=""; \
	for t in cmake:cmake ninja:ninja-build ccache:ccache git:git npm:npm g++:g++ chromium:chromium; do \
	  command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t##*:}"; \
	done; \
	/usr/bin/python3 -c 'import onnx' 2>/dev/null || missing="$$missing python3-onnx"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) || \
	      echo "make: apt-get install$$missing failed" >&2; \
	  else \
	    echo "make: please install:$$missing (Debian package names)" >&2; \
	  fi; \
	  for t in cmake git g++; do command -v $$t >/dev/null || { echo "make: $$t is required" >&2; exit 1; }; done; \
	fi
	@command -v $(GO) >/dev/null || { echo "make: Go is required (https://go.dev/dl)" >&2; exit 1; }

# The PyTorch peer of `ecotune bench --torch` (make bench only; make test does not need
# it): Debian's torch, and OpenBLAS so that torch does not run on the reference BLAS.
bench-deps:
	@missing=""; \
	/usr/bin/python3 -c 'import torch' 2>/dev/null || missing="$$missing python3-torch"; \
	if command -v dpkg >/dev/null; then \
	  dpkg -s libopenblas0-pthread >/dev/null 2>&1 || missing="$$missing libopenblas0-pthread"; \
	fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) || \
	      echo "make: apt-get install$$missing failed; ecotune bench --torch will say so" >&2; \
	  else \
	    echo "make: please install:$$missing (Debian package names) for the PyTorch peer; ecotune bench --torch will say so" >&2; \
	  fi; \
	fi

native: deps
	@scripts/build-native.sh $(VARIANT)

build: native
	$(GOENV) $(GO) build $(GOTAGS) -o bin/ecotune ./cmd/ecotune

test: native
	$(GOENV) ECOTUNE_REQUIRE_TOOLS=1 $(GO) test $(GOTAGS) -timeout 20m ./...
	$(GOENV) $(GO) test -run '^$$' -fuzz FuzzRead -fuzztime $(FUZZTIME) -fuzzminimizetime 2000x ./gguf
	@set -e; for t in $(FUZZ_TARGETS); do \
	  IFS=: read -r pkg target count <<< "$$t"; \
	  $(GOENV) $(GO) test $(GOTAGS) -run '^$$' -fuzz "^$$target$$" -fuzztime $${count:-$(FUZZCOUNT)} -fuzzminimizetime 500x ./$$pkg; \
	done

demo: build
	bin/ecotune demo

bench: build bench-deps
	@scripts/build-native.sh $(VARIANT) llama-server
	$(GOENV) $(GO) test $(GOTAGS) -run '^$$' -bench . -benchtime 1x -timeout 60m ./...
	bin/ecotune bench --shape 24m --threads 2 --full --finetune --torch
	bin/ecotune bench --shape 143m --threads 2 --finetune --profile --qlora q4_k,iq4_nl --torch
	bin/ecotune bench --shape 3b --threads 2 --seq-len 256 --gradient-checkpointing --checkpoint-keep ffn --profile
	bin/ecotune bench --serve --shape 24m --threads 2 --clients 1,8,32
	bin/ecotune bench --serve --shape 143m --threads 2 --clients 1,8,32

gpu-kit: native
	scripts/gpu-kit.sh

clean:
	rm -rf bin build

# linux/arm64: llama.cpp and the cgo packages cross-built with Debian's aarch64 GCC, the ggml
# package's tests run under qemu-user. Not part of `make test` (slow; see docs/arm64.md).
# ARM64_MARCH is the arm64 CPU the build targets (MARCH stays this machine's).
ARM64_MARCH ?= armv8.2-a+fp16+dotprod
export ARM64_MARCH
# The environment's CGO_ flags come before the packages' #cgo flags, so build/cpu-arm64 is
# searched before the build/cpu that link_cpu.go names.
ARM64_GO := GOOS=linux GOARCH=arm64 CGO_ENABLED=1 CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ \
	CGO_CFLAGS="-O2 -g -march=$(ARM64_MARCH) -I$(CURDIR)/build/cpu-arm64/include" \
	CGO_LDFLAGS="-L$(CURDIR)/build/cpu-arm64/lib" $(GO)
# -L: where qemu finds the arm64 dynamic loader and libc (Debian's libc6-arm64-cross).
QEMU_ARM64 := qemu-aarch64 -L /usr/aarch64-linux-gnu

.PHONY: deps-arm64 native-arm64 build-arm64 test-arm64

deps-arm64: deps
	@missing=""; \
	for t in aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu aarch64-linux-gnu-g++:g++-aarch64-linux-gnu qemu-aarch64:qemu-user; do \
	  command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) || \
	      echo "make: apt-get install$$missing failed" >&2; \
	  else \
	    echo "make: please install:$$missing (Debian package names)" >&2; \
	  fi; \
	  for t in aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ qemu-aarch64; do command -v $$t >/dev/null || { echo "make: $$t is required" >&2; exit 1; }; done; \
	fi

native-arm64: deps-arm64
	@scripts/build-native.sh cpu-arm64

build-arm64: native-arm64
	$(ARM64_GO) build -tags ecotune_march -o bin/ecotune-linux-arm64 ./cmd/ecotune

# Every test of the ggml package (ops, backward, optimizer, checkpointing, the fused
# attention, LoRA and loss kernels) against its float64 references; none needs llama.cpp's
# tools or the shared models.
test-arm64: native-arm64
	@s=$$SECONDS; $(ARM64_GO) test -c -tags ecotune_march -o bin/ggml-arm64.test ./ggml && \
	  echo "make test-arm64: test binary built in $$((SECONDS - s)) s"
	cd ggml && $(QEMU_ARM64) ../bin/ggml-arm64.test -test.run '^TestKernelTargetARM64$$' -test.v | grep 'kernels:'
	@s=$$SECONDS; cd ggml && $(QEMU_ARM64) ../bin/ggml-arm64.test -test.timeout 30m; \
	  rc=$$?; echo "make test-arm64: qemu-aarch64 ran the ggml tests in $$((SECONDS - s)) s"; exit $$rc
