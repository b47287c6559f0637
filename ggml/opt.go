//go:build cgo

package ggml

/*
#include <stdlib.h>
#include "ggml.h"
#include "ggml-opt.h"
extern struct ggml_opt_optimizer_params ecotuneOptParams(void * ud);
static ggml_opt_get_optimizer_params ecotune_opt_params_fn(void) { return ecotuneOptParams; }
*/
import "C"

import (
	"fmt"
	"math"
	"runtime/cgo"
	"unsafe"
)

// LossType selects how ggml-opt reduces a graph's outputs to the loss it minimises.
type LossType int

// Losses ggml-opt builds on top of the outputs tensor.
const (
	LossMean         LossType = C.GGML_OPT_LOSS_TYPE_MEAN
	LossSum          LossType = C.GGML_OPT_LOSS_TYPE_SUM
	LossCrossEntropy LossType = C.GGML_OPT_LOSS_TYPE_CROSS_ENTROPY
	LossMSE          LossType = C.GGML_OPT_LOSS_TYPE_MEAN_SQUARED_ERROR
)

// AdamW holds the optimizer's settings for one step.
type AdamW struct {
	LR          float32 // learning rate, > 0
	Beta1       float32 // first-moment decay, [0, 1]
	Beta2       float32 // second-moment decay, [0, 1]
	Eps         float32 // ≥ 0
	WeightDecay float32 // decoupled, [0, 1]
}

// Validate reports settings ggml would abort on.
func (a AdamW) Validate() error {
	bad := func(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }
	switch {
	case bad(a.LR) || a.LR <= 0:
		return fmt.Errorf("ggml: AdamW learning rate %g must be > 0", a.LR)
	case bad(a.Beta1) || a.Beta1 < 0 || a.Beta1 > 1:
		return fmt.Errorf("ggml: AdamW beta1 %g must be in [0, 1]", a.Beta1)
	case bad(a.Beta2) || a.Beta2 < 0 || a.Beta2 > 1:
		return fmt.Errorf("ggml: AdamW beta2 %g must be in [0, 1]", a.Beta2)
	case bad(a.Eps) || a.Eps < 0:
		return fmt.Errorf("ggml: AdamW eps %g must be ≥ 0", a.Eps)
	case bad(a.WeightDecay) || a.WeightDecay < 0 || a.WeightDecay > 1:
		return fmt.Errorf("ggml: AdamW weight decay %g must be in [0, 1]", a.WeightDecay)
	}
	return nil
}

// OptimizerOptions configure an Optimizer.
type OptimizerOptions struct {
	Loss   LossType
	Period int                  // micro-batches per optimizer step (gradient accumulation); 1 if 0
	Params func(step int) AdamW // settings for optimizer step step (1-based), asked before each
}

// Optimizer trains the parameters (SetParam) of a static graph with ggml-opt's AdamW,
// asking Go for the learning rate and other settings at every optimizer step.
type Optimizer struct {
	o       C.ggml_opt_context_t
	h       cgo.Handle
	res     C.ggml_opt_result_t
	opts    OptimizerOptions
	current AdamW
	steps   int // optimizer steps taken
	micro   int // micro-batches since the last optimizer step
	c       *Context
	ud      unsafe.Pointer // C memory holding h
}

// NewOptimizer builds forward, gradient and optimizer graphs from inputs to outputs.
// inputs and the parameters must be allocated already (AllocTensors); compute holds the
// graph's other tensors, which the scheduler allocates.
func NewOptimizer(s *Scheduler, compute *Context, inputs, outputs *Tensor, o OptimizerOptions) (*Optimizer, error) {
	if s == nil || s.s == nil || compute == nil || compute.ctx == nil {
		return nil, ErrClosed
	}
	if err := inputs.check(); err != nil {
		return nil, err
	}
	if err := outputs.check(); err != nil {
		return nil, err
	}
	if !inputs.Allocated() {
		return nil, fmt.Errorf("ggml: optimizer inputs %s must be allocated before the optimizer is made", inputs)
	}
	if o.Period <= 0 {
		o.Period = 1
	}
	if o.Params == nil {
		return nil, fmt.Errorf("ggml: optimizer needs a Params function")
	}
	first := o.Params(1)
	if err := first.Validate(); err != nil {
		return nil, err
	}
	opt := &Optimizer{opts: o, current: first, c: compute}
	opt.h = cgo.NewHandle(opt)
	p := C.ggml_opt_default_params(s.s, C.enum_ggml_opt_loss_type(o.Loss))
	p.ctx_compute = compute.ctx
	p.inputs = inputs.p
	p.outputs = outputs.p
	p.opt_period = C.int32_t(o.Period)
	p.get_opt_pars = C.ecotune_opt_params_fn()
	// ggml hands the user data back untouched; it holds the handle in C memory so no
	// Go pointer crosses into C.
	opt.ud = C.malloc(C.size_t(unsafe.Sizeof(C.uintptr_t(0))))
	*(*C.uintptr_t)(opt.ud) = C.uintptr_t(opt.h)
	p.get_opt_pars_ud = opt.ud
	p.optimizer = C.GGML_OPT_OPTIMIZER_TYPE_ADAMW
	opt.o = C.ggml_opt_init(p)
	if opt.o == nil {
		opt.h.Delete()
		C.free(opt.ud)
		return nil, fmt.Errorf("ggml: ggml_opt_init failed")
	}
	opt.res = C.ggml_opt_result_init()
	return opt, nil
}

//export ecotuneOptParams
func ecotuneOptParams(ud unsafe.Pointer) C.struct_ggml_opt_optimizer_params {
	opt := cgo.Handle(*(*C.uintptr_t)(ud)).Value().(*Optimizer)
	var p C.struct_ggml_opt_optimizer_params
	p.adamw.alpha = C.float(opt.current.LR)
	p.adamw.beta1 = C.float(opt.current.Beta1)
	p.adamw.beta2 = C.float(opt.current.Beta2)
	p.adamw.eps = C.float(opt.current.Eps)
	p.adamw.wd = C.float(opt.current.WeightDecay)
	return p
}

// Labels is the tensor ggml-opt compares outputs with (cross-entropy and MSE losses),
// or nil; set it after Step's prepare callback allocates.
func (o *Optimizer) Labels() *Tensor {
	if o == nil || o.o == nil {
		return nil
	}
	p := C.ggml_opt_labels(o.o)
	if p == nil {
		return nil
	}
	return &Tensor{p: p, c: o.c}
}

// Step runs one micro-batch forward and backward; every Period-th call also applies an
// AdamW update with the settings Params returns. setInputs fills the inputs (and
// labels) once the graph is allocated. It returns this micro-batch's loss.
func (o *Optimizer) Step(setInputs func() error) (float64, error) {
	return o.run(true, setInputs)
}

// Eval runs a forward pass only and returns the loss.
func (o *Optimizer) Eval(setInputs func() error) (float64, error) {
	return o.run(false, setInputs)
}

func (o *Optimizer) run(backward bool, setInputs func() error) (float64, error) {
	if o == nil || o.o == nil {
		return 0, ErrClosed
	}
	if backward && o.micro+1 == o.opts.Period {
		next := o.opts.Params(o.steps + 1)
		if err := next.Validate(); err != nil {
			return 0, fmt.Errorf("optimizer step %d: %w", o.steps+1, err)
		}
		o.current = next
	}
	C.ggml_opt_alloc(o.o, C.bool(backward))
	if setInputs != nil {
		if err := setInputs(); err != nil {
			// ggml-opt insists on an eval after every alloc; run one so the state stays
			// consistent, then report the caller's error.
			C.ggml_opt_eval(o.o, nil)
			return 0, err
		}
	}
	C.ggml_opt_result_reset(o.res)
	C.ggml_opt_eval(o.o, o.res)
	if backward {
		o.micro = (o.micro + 1) % o.opts.Period
		if o.micro == 0 {
			o.steps++
		}
	}
	var loss, unc C.double
	C.ggml_opt_result_loss(o.res, &loss, &unc)
	return float64(loss), nil
}

// Steps is the number of optimizer updates applied so far.
func (o *Optimizer) Steps() int { return o.steps }

// Reset zeroes accumulated gradients; with moments it also restarts AdamW.
func (o *Optimizer) Reset(moments bool) {
	if o != nil && o.o != nil {
		C.ggml_opt_reset(o.o, C.bool(moments))
		if moments {
			o.steps, o.micro = 0, 0
		}
	}
}

// Close frees the optimizer's graphs and state. Safe to call twice.
func (o *Optimizer) Close() error {
	if o == nil || o.o == nil {
		return nil
	}
	C.ggml_opt_result_free(o.res)
	C.ggml_opt_free(o.o)
	o.h.Delete()
	C.free(o.ud)
	o.o, o.res, o.ud = nil, nil, nil
	return nil
}
