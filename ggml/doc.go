// Package ggml is ecotune's cgo binding to ggml, the tensor library under llama.cpp.
//
// It is the only package besides bindings that talks to C. Ownership is explicit:
//
//   - A Context owns tensor metadata and graphs built in it; Close frees them all.
//   - A Buffer owns backend memory holding the data of a Context's tensors.
//   - A Backend (CPU or CUDA) and a Scheduler over backends each have their own Close.
//
// Tensors are views owned by their Context: they are valid until it is closed, after
// which every method reports ErrClosed instead of touching freed memory.
//
// Ops check shapes and types in Go before ggml sees them, because ggml reports a bad
// shape by aborting the process. A bad op panics with an *OpError while a graph is being
// built; Build turns that panic back into an error at the graph boundary.
//
// A minimal computation:
//
//	be, _ := ggml.NewCPUBackend(2)
//	defer be.Close()
//	ctx, _ := ggml.NewContext(16, 64)
//	defer ctx.Close()
//	a := ctx.NewTensor(ggml.TypeF32, 4, 3) // 3 rows of 4
//	x := ctx.NewTensor(ggml.TypeF32, 4, 1)
//	buf, _ := ctx.AllocTensors(be)
//	defer buf.Close()
//	_ = a.SetF32(weights)
//	_ = x.SetF32(input)
//	var g *ggml.Graph
//	err := ggml.Build(func() { g = ctx.NewGraph(64, false); g.Expand(ctx.MulMat(a, x)) })
//	sched, _ := ggml.NewScheduler([]*ggml.Backend{be}, 64)
//	defer sched.Close()
//	err = sched.Compute(g)
package ggml
