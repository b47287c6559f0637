//go:build !cgo

package bindings

// The bindings are cgo over llama.cpp's static libraries; without cgo nothing here can
// work, so a !cgo build fails with this single, self-explaining undefined name instead of
// a cascade of missing symbols. Build with CGO_ENABLED=1 after `make` (which runs
// scripts/build-native.sh to build the libraries into build/cpu).
var _ = bindings_requires_cgo__build_with_CGO_ENABLED_1_after_make
