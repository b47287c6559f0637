//go:build !cgo

package ggml

// ecotune's ggml package is a cgo binding: build with CGO_ENABLED=1 after `make`.
var _ = ggml_requires_cgo__build_with_CGO_ENABLED_1_after_make
