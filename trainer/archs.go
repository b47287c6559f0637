package trainer

// architectures is the one explicit list of supported architectures (no init-time
// registration: adding one means a new arch_NAME.go file and a line here).
func architectures() []*Arch {
	return []*Arch{
		archLlama(),
		archQwen2(),
		archPhi2(),
		archPhi3(),
		archGemma2(),
	}
}
