package eval

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// SmoothMethod names one of sacreBLEU's smoothing methods for n-gram
// precisions that would otherwise be zero (Chen and Cherry, 2014).
type SmoothMethod string

// The smoothing methods; the empty name means SmoothExp.
const (
	// SmoothExp halves the credit for each successive zero-match order,
	// as mteval-v13a does (Chen and Cherry's method 3); the default.
	SmoothExp SmoothMethod = "exp"
	// SmoothNone leaves zero precisions at zero, so any zero order makes
	// BLEU zero.
	SmoothNone SmoothMethod = "none"
	// SmoothFloor replaces a zero match count by a small value, 0.1 by
	// default (method 1).
	SmoothFloor SmoothMethod = "floor"
	// SmoothAddK adds k, 1 by default, to the match and total counts of
	// every order above 1 (method 2).
	SmoothAddK SmoothMethod = "add-k"
)

// Default smoothing values, from Chen and Cherry (2014) as sacreBLEU uses them.
const (
	// DefaultFloorValue is the floor smoothing value when none is given.
	DefaultFloorValue = 0.1
	// DefaultAddKValue is the add-k smoothing value when none is given.
	DefaultAddKValue = 1.0
)

// DefaultMaxOrder is BLEU's usual maximum n-gram order.
const DefaultMaxOrder = 4

// logZero is what sacreBLEU uses for log(0) so that a zero precision drives
// the geometric mean to 0 without producing NaN.
const logZero = -9999999999.0

// ErrUnknownSmoothMethod is returned for a smoothing name other than exp,
// none, floor or add-k.
var ErrUnknownSmoothMethod = errors.New("unknown BLEU smoothing method (want exp, none, floor or add-k)")

// ErrBadStats is returned by BLEUFromStats for inconsistent statistics.
var ErrBadStats = errors.New("invalid BLEU statistics")

// BLEUStats are BLEU's sufficient statistics, summed over a corpus.
// Counts[n-1] and Totals[n-1] are the matched and hypothesis n-gram counts
// for order n.
type BLEUStats struct {
	// Counts are the clipped n-gram matches per order.
	Counts []int `json:"counts"`
	// Totals are the hypothesis n-grams per order.
	Totals []int `json:"totals"`
	// SysLen is the number of hypothesis tokens.
	SysLen int `json:"sys_len"`
	// RefLen is the number of reference tokens, using for each segment
	// the reference length closest to the hypothesis length.
	RefLen int `json:"ref_len"`
}

// add adds o to s; both must have the same number of orders.
func (s *BLEUStats) add(o BLEUStats) {
	for i := range s.Counts {
		s.Counts[i] += o.Counts[i]
		s.Totals[i] += o.Totals[i]
	}
	s.SysLen += o.SysLen
	s.RefLen += o.RefLen
}

// BLEUScore is a BLEU result with the same fields as sacreBLEU's BLEUScore.
// Score and Precisions are percentages (0..100).
type BLEUScore struct {
	// Score is BLEU on the 0..100 scale.
	Score float64 `json:"score"`
	// Counts are the clipped n-gram matches per order, before smoothing.
	Counts []int `json:"counts"`
	// Totals are the hypothesis n-grams per order, before smoothing.
	Totals []int `json:"totals"`
	// Precisions are the (smoothed) n-gram precisions in percent.
	Precisions []float64 `json:"precisions"`
	// BP is the brevity penalty.
	BP float64 `json:"bp"`
	// Ratio is SysLen/RefLen, or 0 when RefLen is 0.
	Ratio float64 `json:"ratio"`
	// SysLen is the number of hypothesis tokens.
	SysLen int `json:"sys_len"`
	// RefLen is the effective reference length.
	RefLen int `json:"ref_len"`
}

// String formats the score as sacreBLEU prints it, without the signature:
// "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)".
func (s BLEUScore) String() string {
	precs := make([]string, len(s.Precisions))
	for i, p := range s.Precisions {
		precs[i] = fmt.Sprintf("%.1f", p)
	}
	return fmt.Sprintf("BLEU = %.2f %s (BP = %.3f ratio = %.3f hyp_len = %d ref_len = %d)",
		s.Score, strings.Join(precs, "/"), s.BP, s.Ratio, s.SysLen, s.RefLen)
}

// smoothing resolves the method and value in opts, applying sacreBLEU's
// defaults.
func (o BLEUOptions) smoothing() (SmoothMethod, float64, error) {
	method := o.Smooth
	if method == "" {
		method = SmoothExp
	}
	var def float64
	switch method {
	case SmoothExp, SmoothNone:
	case SmoothFloor:
		def = DefaultFloorValue
	case SmoothAddK:
		def = DefaultAddKValue
	default:
		return "", 0, fmt.Errorf("%q: %w", string(method), ErrUnknownSmoothMethod)
	}
	if o.SmoothValue != nil {
		return method, *o.SmoothValue, nil
	}
	return method, def, nil
}

// BLEUFromStats computes BLEU from sufficient statistics exactly as
// sacreBLEU's BLEU.compute_bleu does, including its degenerate cases: no
// matched n-gram at any order gives 0; a zero-length hypothesis shorter
// than the reference gives a brevity penalty of 0; an order with no
// hypothesis n-grams ends the precision loop.
//
// The maximum order is len(stats.Counts). Only opts.Smooth, opts.SmoothValue
// and opts.EffectiveOrder are used (opts.MaxOrder, when set, must match).
// Note that sacreBLEU's compute_bleu defaults to no smoothing while the zero
// BLEUOptions means exp smoothing: pass Smooth: SmoothNone to reproduce a
// bare compute_bleu call.
func BLEUFromStats(stats BLEUStats, opts BLEUOptions) (BLEUScore, error) {
	order := len(stats.Counts)
	switch {
	case order == 0:
		return BLEUScore{}, fmt.Errorf("%w: no n-gram orders", ErrBadStats)
	case len(stats.Totals) != order:
		return BLEUScore{}, fmt.Errorf("%w: %d counts but %d totals", ErrBadStats, order, len(stats.Totals))
	case opts.MaxOrder != 0 && opts.MaxOrder != order:
		return BLEUScore{}, fmt.Errorf("%w: %d orders of statistics for max order %d", ErrBadStats, order, opts.MaxOrder)
	case stats.SysLen < 0 || stats.RefLen < 0:
		return BLEUScore{}, fmt.Errorf("%w: negative length", ErrBadStats)
	}
	for i := range order {
		if stats.Counts[i] < 0 || stats.Totals[i] < 0 {
			return BLEUScore{}, fmt.Errorf("%w: negative count at order %d", ErrBadStats, i+1)
		}
	}
	method, value, err := opts.smoothing()
	if err != nil {
		return BLEUScore{}, err
	}

	res := BLEUScore{
		Counts:     append([]int(nil), stats.Counts...),
		Totals:     append([]int(nil), stats.Totals...),
		Precisions: make([]float64, order),
		BP:         1,
		SysLen:     stats.SysLen,
		RefLen:     stats.RefLen,
	}
	if stats.RefLen > 0 {
		res.Ratio = float64(stats.SysLen) / float64(stats.RefLen)
	}
	if stats.SysLen < stats.RefLen {
		if stats.SysLen > 0 {
			res.BP = math.Exp(1 - float64(stats.RefLen)/float64(stats.SysLen))
		} else {
			res.BP = 0
		}
	}

	anyMatch := false
	for _, c := range stats.Counts {
		anyMatch = anyMatch || c != 0
	}
	if !anyMatch {
		// sacreBLEU returns 0 here rather than let smoothing invent a
		// score for a hypothesis that matches nothing (its issue #141).
		return res, nil
	}

	smoothMteval := 1.0
	effOrder := order
	for n := 1; n <= order; n++ {
		correct, total := float64(stats.Counts[n-1]), float64(stats.Totals[n-1])
		if method == SmoothAddK && n > 1 {
			correct += value
			total += value
		}
		if total == 0 {
			break
		}
		if opts.EffectiveOrder {
			// Only orders the hypothesis is long enough to have count,
			// so short sentences are not scored zero.
			effOrder = n
		}
		switch {
		case correct != 0:
			res.Precisions[n-1] = 100 * correct / total
		case method == SmoothExp:
			smoothMteval *= 2
			res.Precisions[n-1] = 100 / (smoothMteval * total)
		case method == SmoothFloor:
			res.Precisions[n-1] = 100 * value / total
		}
	}

	sum := 0.0
	for _, p := range res.Precisions[:effOrder] {
		if p == 0 {
			sum += logZero
		} else {
			sum += math.Log(p)
		}
	}
	res.Score = res.BP * math.Exp(sum/float64(effOrder))
	return res, nil
}
