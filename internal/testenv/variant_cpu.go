//go:build !cuda

package testenv

// buildVariant is the build/ folder whose llama.cpp tools match this binary's libraries.
const buildVariant = "cpu"
