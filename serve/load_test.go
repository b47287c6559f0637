package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLoad: 32 concurrent clients send 500 requests over loopback, mixing three adapters
// and the base, streamed and not; none fails and every answer equals the same request's
// answer when it ran alone. Bounded: a fixed count and a two-minute deadline. It runs with
// the sets taking turns and decoding together (steps serving several sets must occur, their
// adapters stacked on x86), and together over adapters of two ranks, which are not stacked
// (each token computes every adapter's products, scaled by 0 for the others').
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test; runs without -short")
	}
	f := newFixture(t)
	unstackable := newFixtureRanks(t, 8, 4, 8)
	for _, tc := range []struct {
		name     string
		f        fixture
		mix      bool
		stacking bool // whether mixed steps can stack the adapters (x86)
	}{
		{"mix=false", f, false, false},
		{"mix=true", f, true, true},
		{"mix=true,ranks=8-4-8", unstackable, true, false},
	} {
		mix := tc.mix
		t.Run(tc.name, func(t *testing.T) {
			e := openEngine(t, tc.f, Options{Threads: 1, Parallel: 8, Ctx: 256, Queue: 64, Mix: mix})
			ts, _ := startServer(t, e, HandlerOptions{})
			var mostSets, stacked atomic.Int32
			e.OnStep(func(ev Event) { // after the server's metrics took the hook
				for m := mostSets.Load(); int32(ev.Sets) > m && !mostSets.CompareAndSwap(m, int32(ev.Sets)); m = mostSets.Load() {
				}
				if ev.Stacked {
					stacked.Add(1)
				}
			})
			runLoad(t, ts)
			if mix {
				assert.GreaterOrEqual(t, mostSets.Load(), int32(3), "sets decoding together")
				switch {
				case !tc.stacking:
					assert.Zero(t, stacked.Load(), "steps with the adapters stacked")
				case runtime.GOARCH == "amd64":
					assert.Positive(t, stacked.Load(), "steps with the adapters stacked")
				}
			} else {
				assert.Equal(t, int32(1), mostSets.Load(), "sets taking turns: one a step")
			}
		})
	}
}

func runLoad(t *testing.T, ts *httptest.Server) {
	models := []string{"stories", "alpha", "beta", "gamma"}
	type key struct{ p, m int }
	body := func(k key, stream bool) string {
		return fmt.Sprintf(`{"model":%q,"prompt":%q,"max_tokens":24,"temperature":0,"stream":%v}`, models[k.m], prompts[k.p], stream)
	}
	// Each distinct request alone first: the expected answers.
	want := map[key]string{}
	for p := range prompts {
		for m := range models {
			k := key{p, m}
			status, b, _ := call(t, ts, "POST", "/v1/completions", body(k, false))
			require.Equal(t, 200, status, b)
			want[k] = textOf(t, b)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const clients, total = 32, 500
	var next, failures atomic.Int32
	var mu sync.Mutex
	var mismatches []string
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for next.Add(1) <= total && ctx.Err() == nil {
				k := key{rng.IntN(len(prompts)), rng.IntN(len(models))}
				stream := rng.IntN(2) == 0
				got, err := complete(ctx, ts.Client(), ts.URL, body(k, stream), stream)
				if err != nil {
					failures.Add(1)
					mu.Lock()
					mismatches = append(mismatches, err.Error())
					mu.Unlock()
					continue
				}
				if got != want[k] {
					mu.Lock()
					mismatches = append(mismatches, fmt.Sprintf("%s/%q (stream %v): got %q, want %q", models[k.m], prompts[k.p], stream, got, want[k]))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	require.NoError(t, ctx.Err(), "the load test ran past its deadline")
	assert.Zero(t, failures.Load())
	assert.Empty(t, mismatches)
	t.Logf("%d requests from %d clients in %s", total, clients, time.Since(start).Round(time.Millisecond))
	assert.Equal(t, float64(total+len(want)), metric(t, ts, `ecotune_requests_total{code="200",route="POST /v1/completions"}`))
}

// complete sends one completions request and returns its text, reading SSE when streamed.
func complete(ctx context.Context, c *http.Client, url, body string, stream bool) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/v1/completions", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	if !stream {
		var v struct{ Choices []struct{ Text string } }
		if err := json.Unmarshal(b, &v); err != nil || len(v.Choices) != 1 {
			return "", fmt.Errorf("bad response %s: %v", b, err)
		}
		return v.Choices[0].Text, nil
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		d, ok := strings.CutPrefix(line, "data: ")
		if !ok || d == "[DONE]" {
			continue
		}
		var v struct{ Choices []struct{ Text string } }
		if err := json.Unmarshal([]byte(d), &v); err != nil {
			return "", fmt.Errorf("bad event %s: %v", d, err)
		}
		if len(v.Choices) > 0 {
			sb.WriteString(v.Choices[0].Text)
		}
	}
	return sb.String(), nil
}
