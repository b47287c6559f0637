package trainer

import (
	"fmt"
	"math"
)

// Learning-rate schedule shapes after warmup.
const (
	ScheduleCosine   = "cosine"   // half a cosine from LR down to MinLR
	ScheduleLinear   = "linear"   // a straight line from LR down to MinLR
	ScheduleConstant = "constant" // LR throughout
)

// Schedule gives the learning rate of every optimizer step, computed in Go: a linear
// warmup from 0, then a decay of the chosen shape over the remaining steps.
type Schedule struct {
	Kind   string  // ScheduleCosine (default), ScheduleLinear or ScheduleConstant
	LR     float64 // peak learning rate
	MinLR  float64 // final learning rate of the decaying shapes
	Warmup int     // steps of linear warmup
	Steps  int     // total optimizer steps
}

// Validate reports a schedule that cannot produce learning rates.
func (s Schedule) Validate() error {
	switch s.Kind {
	case "", ScheduleCosine, ScheduleLinear, ScheduleConstant:
	default:
		return fmt.Errorf("unknown learning-rate schedule %q (cosine, linear or constant)", s.Kind)
	}
	if !(s.LR > 0) || math.IsInf(s.LR, 0) {
		return fmt.Errorf("learning rate %g must be positive", s.LR)
	}
	if s.MinLR < 0 || s.MinLR > s.LR {
		return fmt.Errorf("minimum learning rate %g must be in [0, %g]", s.MinLR, s.LR)
	}
	if s.Steps < 1 || s.Warmup < 0 || s.Warmup > s.Steps {
		return fmt.Errorf("schedule of %d steps with %d warmup steps: need 0 ≤ warmup ≤ steps and steps ≥ 1", s.Steps, s.Warmup)
	}
	return nil
}

// At is the learning rate of optimizer step step (1-based).
func (s Schedule) At(step int) float64 {
	if step <= s.Warmup {
		return s.LR * float64(step) / float64(s.Warmup)
	}
	if s.Kind == ScheduleConstant || s.Steps <= s.Warmup {
		return s.LR
	}
	p := float64(step-s.Warmup) / float64(s.Steps-s.Warmup) // (0, 1]
	p = math.Min(p, 1)
	if s.Kind == ScheduleLinear {
		return s.LR - (s.LR-s.MinLR)*p
	}
	return s.MinLR + (s.LR-s.MinLR)*0.5*(1+math.Cos(math.Pi*p))
}
