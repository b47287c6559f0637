//go:build cgo

package ggml

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.StrictF32()
	os.Exit(m.Run())
}

// env builds one small computation: leaves with data in `in` (allocated on the backend
// under test), ops in `c` (allocated by a scheduler).
type env struct {
	t       testing.TB
	be      *Backend
	in, c   *Context
	pending []func() error
	sched   *Scheduler
	graph   *Graph
}

func newEnv(t testing.TB, be *Backend) *env {
	t.Helper()
	in, err := NewContext(64, 0)
	require.NoError(t, err)
	c, err := NewContext(4096, 4096)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(); in.Close() })
	return &env{t: t, be: be, in: in, c: c}
}

func (e *env) leaf(typ Type, data []float32, ne ...int) *Tensor {
	x := e.in.NewTensor(typ, ne...)
	e.pending = append(e.pending, func() error { return x.SetF32(data) })
	return x
}

func (e *env) leafI32(data []int32, ne ...int) *Tensor {
	x := e.in.NewTensor(TypeI32, ne...)
	e.pending = append(e.pending, func() error { return x.SetI32(data) })
	return x
}

func (e *env) leafBytes(typ Type, data []byte, ne ...int) *Tensor {
	x := e.in.NewTensor(typ, ne...)
	e.pending = append(e.pending, func() error { return x.SetBytes(data) })
	return x
}

// alloc allocates and fills the leaves; run calls it if the test did not.
func (e *env) alloc() {
	if e.pending == nil {
		return
	}
	buf, err := e.in.AllocTensors(e.be)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { buf.Close() })
	for _, f := range e.pending {
		require.NoError(e.t, f())
	}
	e.pending = nil
}

func (e *env) scheduler() *Scheduler {
	if e.sched != nil {
		return e.sched
	}
	backends := []*Backend{e.be}
	if !e.be.IsCPU() {
		cpu, err := NewCPUBackend(2)
		require.NoError(e.t, err)
		e.t.Cleanup(func() { cpu.Close() })
		backends = append(backends, cpu)
	}
	s, err := NewScheduler(backends, 4096)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { s.Close() })
	e.sched = s
	return s
}

// run builds the graph of the tensor f returns, computes it and returns its values.
func (e *env) run(f func(c *Context) *Tensor) []float32 {
	e.t.Helper()
	e.alloc()
	var out *Tensor
	require.NoError(e.t, Build(func() {
		out = f(e.c)
		out.SetOutput()
		e.graph = e.c.NewGraph(4096, false)
		e.graph.Expand(out)
	}))
	s := e.scheduler()
	require.NoError(e.t, s.Compute(e.graph))
	v, err := out.F32()
	require.NoError(e.t, err)
	return v
}

// runAll builds one graph of the tensors f returns, computes it and returns their values.
func (e *env) runAll(f func(c *Context) []*Tensor) [][]float32 {
	e.t.Helper()
	return read(e.t, e.compute(f), (*Tensor).F32)
}

// compute builds one graph of the tensors f returns and computes it.
func (e *env) compute(f func(c *Context) []*Tensor) []*Tensor {
	e.t.Helper()
	e.alloc()
	var outs []*Tensor
	require.NoError(e.t, Build(func() {
		outs = f(e.c)
		e.graph = e.c.NewGraph(4096, false)
		for _, x := range outs {
			x.SetOutput()
			e.graph.Expand(x)
		}
	}))
	require.NoError(e.t, e.scheduler().Compute(e.graph))
	return outs
}

// runAllBytes is runAll returning each result's raw bytes (for types other than F32).
func (e *env) runAllBytes(f func(c *Context) []*Tensor) [][]byte {
	e.t.Helper()
	return read(e.t, e.compute(f), (*Tensor).Bytes)
}

// read returns get of each tensor.
func read[T any](t testing.TB, ts []*Tensor, get func(*Tensor) (T, error)) []T {
	t.Helper()
	res := make([]T, len(ts))
	for i, x := range ts {
		v, err := get(x)
		require.NoError(t, err)
		res[i] = v
	}
	return res
}

// product makes the operands of a product y = W·x: a random weight [k, m] quantized to
// typ (returned as its bytes wq and the leaf W) and a random input x [k, n] (leaf X).
func (e *env) product(typ Type, seed uint64, k, m, n int) (wq []byte, x []float32, W, X *Tensor) {
	e.t.Helper()
	r := rand.New(rand.NewPCG(uint64(typ), seed))
	w := randn(r, k*m, 0.5)
	x = randn(r, k*n, 1)
	wq, err := Quantize(typ, w, k)
	require.NoError(e.t, err)
	return wq, x, e.leafBytes(typ, wq, k, m), e.leaf(TypeF32, x, k, n)
}
