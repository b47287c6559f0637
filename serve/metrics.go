package serve

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus series, in a registry of its own (no global state).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	ttft     prometheus.Histogram
	tpot     prometheus.Histogram
	steps    prometheus.Histogram
}

func newMetrics(e *Engine) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecotune_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecotune_tokens_total", Help: "Tokens processed: prompt tokens read and completion tokens generated.",
		}, []string{"kind"}),
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ecotune_time_to_first_token_seconds", Help: "From a request's arrival to its first generated token.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		tpot: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ecotune_time_per_output_token_seconds", Help: "Time between consecutive generated tokens of one request.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		steps: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ecotune_decode_step_seconds", Help: "Duration of one scheduler decode step.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
	}
	gauge := func(name, help string, f func(Stats) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f(e.Stats())) })
	}
	m.reg.MustRegister(m.requests, m.tokens, m.ttft, m.tpot, m.steps,
		gauge("ecotune_queue_depth", "Requests waiting for a sequence slot.", func(s Stats) int { return s.Waiting }),
		gauge("ecotune_slots_busy", "Sequence slots holding a request.", func(s Stats) int { return s.Busy }),
		gauge("ecotune_slots", "Sequence slots (--parallel).", func(s Stats) int { return s.Slots }),
		gauge("ecotune_adapters_loaded", "LoRA adapters loaded.", func(s Stats) int { return s.Adapters }),
		prometheus.NewGoCollector(),
	)
	e.OnStep(func(ev Event) { m.steps.Observe(ev.Took.Seconds()) })
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// instrument counts a route's requests by status.
func (m *metrics) instrument(route string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h(rec, r)
		m.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
	}
}

// statusRecorder remembers the status a handler wrote; it keeps streaming (Flush) working.
type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// observation times one request's tokens.
type observation struct {
	m     *metrics
	start time.Time
	last  time.Time
}

func (m *metrics) observe(s *Stream) *observation {
	m.tokens.WithLabelValues("prompt").Add(float64(s.PromptTokens()))
	return &observation{m: m, start: s.j.queued}
}

// token records one generated token.
func (o *observation) token() {
	now := time.Now()
	if o.last.IsZero() {
		o.m.ttft.Observe(now.Sub(o.start).Seconds())
	} else {
		o.m.tpot.Observe(now.Sub(o.last).Seconds())
	}
	o.last = now
}

// each runs f on every token of st as it comes, timing them, and returns the result or
// the stream's error.
func (o *observation) each(st *Stream, f func(Token)) (Result, error) {
	for tok, err := range st.Tokens() {
		if err != nil {
			return st.Result(), err
		}
		o.token()
		f(tok)
	}
	res := st.Result()
	o.done(res)
	return res, nil
}

// done records a finished request's generated tokens.
func (o *observation) done(r Result) {
	o.m.tokens.WithLabelValues("completion").Add(float64(r.CompletionTokens))
}
