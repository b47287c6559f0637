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
export CGO_ENABLED := 1

.PHONY: all help deps native build test test-go fuzz demo bench gpu-kit clean

all: build

help:
	@echo "make demo      run the end-to-end demo on the bundled data (builds what it needs)"
	@echo "make test      run every test (builds what it needs; CUDA tests skip without a GPU)"
	@echo "make build     build bin/ecotune (CUDA=1 for the CUDA backend, CUDA_ARCH=90 default)"
	@echo "make bench     run the benchmarks (see BENCHMARKS.md)"
	@echo "make native    only build llama.cpp/ggml into the cache (~/.cache/ecotune)"
	@echo "make gpu-kit   pack Go, the vendored modules and llama.cpp for a GPU machine without them (scripts/gpu-check.sh)"
	@echo "make clean     remove bin/ and build/ links (the cache stays)"

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

native: deps
	@scripts/build-native.sh $(VARIANT)

build: native
	$(GO) build $(GOTAGS) -o bin/ecotune ./cmd/ecotune

test: native
	ECOTUNE_REQUIRE_TOOLS=1 $(GO) test $(GOTAGS) -timeout 20m ./...
	$(GO) test -run '^$$' -fuzz FuzzRead -fuzztime $(FUZZTIME) -fuzzminimizetime 2000x ./gguf

demo: build
	bin/ecotune demo

bench: build
	$(GO) test $(GOTAGS) -run '^$$' -bench . -benchtime 1x -timeout 60m ./...
	bin/ecotune bench --shape 24m --threads 2 --full --finetune
	bin/ecotune bench --shape 143m --threads 2 --finetune --profile --qlora q4_k,iq4_nl
	bin/ecotune bench --shape 3b --threads 2 --seq-len 256 --gradient-checkpointing --profile

gpu-kit: native
	scripts/gpu-kit.sh

clean:
	rm -rf bin build
