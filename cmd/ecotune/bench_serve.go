package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/factory"
	"github.com/ecotune/ecotune/gguf"
)

// serveBenchFlags are the flags of `ecotune bench --serve`.
func serveBenchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "serve", Usage: "measure `ecotune serve` against llama-server instead of training (see BENCHMARKS.md)"},
		&cli.StringFlag{Name: "clients", Value: "1,8,32", Usage: "with --serve: concurrent clients at each point (comma-separated)"},
		&cli.IntFlag{Name: "requests", Value: 4, Usage: "with --serve: requests each client sends, one after another (at least 64 a point in all)"},
		&cli.IntFlag{Name: "max-tokens", Value: 64, Usage: "with --serve: tokens each request generates"},
		&cli.IntFlag{Name: "parallel", Value: 32, Usage: "with --serve: sequences both servers decode together (--parallel, -np)"},
		&cli.IntFlag{Name: "ctx", Value: 256, Usage: "with --serve: context tokens of each sequence"},
		&cli.BoolFlag{Name: "no-peer", Usage: "with --serve: measure ecotune serve only"},
		&cli.StringFlag{Name: "serve-flags", Usage: "with --serve: more flags for ecotune serve, separated by spaces (--mix-sets=false, say)"},
	}
}

// serveBenchAdapters is how many random LoRA adapters both servers load.
const serveBenchAdapters = 3

// serveBenchPrompt follows a request number, so that no two prompts are the same. They
// still share their first tokens (BOS, "▁" and the number's leading digits), so
// llama-server's prompt cache is turned off per request (see llamaServer).
const serveBenchPrompt = ". Once upon a time, in a small village by the sea, there lived an old fisherman who told stories to the children every evening."

// benchServer is one server under test: how to start it and how to ask it for a stream.
type benchServer struct {
	name  string
	start func(ctx context.Context) (*serverProc, error)
	// body is the JSON of a streamed completion of prompt on adapter (an index).
	body func(prompt string, adapter, maxTokens int) ([]byte, error)
}

// servePoint is one measured point: a server, an adapter mix and a client count.
type servePoint struct {
	Server   string
	Mix      string // "one" adapter for every request or the three "mixed"
	Clients  int
	Requests int
	Errors   int
	Tokens   int
	Wall     time.Duration
	TTFT     []time.Duration
	Rounds   []float64 // tokens/s of each round, in the order they ran
	firstErr error
	texts    map[int]string // request number → generated text
}

func (p servePoint) tokensPerSec() float64 { return float64(p.Tokens) / p.Wall.Seconds() }

func runServeBench(c *cli.Context) error {
	w := c.App.ErrWriter
	clients, err := parseClients(c.String("clients"))
	if err != nil {
		return usageError{err}
	}
	threads, parallel, nctx, maxTok, perClient := c.Int("threads"), c.Int("parallel"), c.Int("ctx"), c.Int("max-tokens"), c.Int("requests")
	if threads < 1 || parallel < 1 || maxTok < 1 || perClient < 1 || nctx < maxTok+64 {
		return usagef("--threads, --parallel, --max-tokens, --requests must be ≥ 1 and --ctx ≥ --max-tokens + 64")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ecotune-bench-serve-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	model := c.String("model")
	shape := c.String("shape")
	if model == "" {
		if shape == "" {
			shape = "24m"
		}
		spec, ok := benchShapes()[shape]
		if !ok {
			return usagef("--shape %q: want 24m, 143m or 3b", shape)
		}
		if spec.VocabFile == "" || c.IsSet("vocab") {
			spec.VocabFile = c.String("vocab")
		}
		spec.Seed = 1
		// Served weights are 16-bit, as Hugging Face checkpoints ship them (ecotune
		// convert keeps their type; convert_hf_to_gguf.py writes F16), not the F32 the
		// training benches use: llama.cpp's batched F32 products run near compute-bound at
		// a handful of rows, which would measure that instead of the servers' batching.
		spec.Type = gguf.TypeF16
		model = filepath.Join(dir, shape+".gguf")
		fmt.Fprintf(w, "bench: writing the %s shape and %d random LoRA adapters\n", shape, serveBenchAdapters)
		if err := factory.Init(spec, model); err != nil {
			return err
		}
	}
	adapters := make([]string, serveBenchAdapters)
	for i := range adapters {
		adapters[i] = filepath.Join(dir, fmt.Sprintf("adapter%d.gguf", i))
		if err := factory.RandomLoRA(model, adapters[i], 8, 0.05, uint64(i+1)); err != nil {
			return err
		}
	}

	servers := []benchServer{ecotuneServer(exe, model, adapters, threads, parallel, nctx, strings.Fields(c.String("serve-flags")))}
	if !c.Bool("no-peer") {
		tool := filepath.Join(c.String("tools"), "llama-server")
		if _, err := os.Stat(tool); err != nil {
			return fmt.Errorf("llama.cpp's llama-server is not built (%w): `make bench` builds it (or scripts/build-native.sh cpu llama-server), or pass --no-peer", err)
		}
		servers = append(servers, llamaServer(tool, model, adapters, threads, parallel, nctx))
	}
	points, err := benchServers(c.Context, servers, clients, perClient, maxTok, w)
	if err != nil {
		return err
	}
	printServeBench(c.App.Writer, points, servers, clients, shapeOr(shape, model), threads, parallel, maxTok)
	return nil
}

func shapeOr(shape, model string) string {
	if shape != "" {
		return shape
	}
	return filepath.Base(model)
}

// parseClients reads --clients.
func parseClients(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--clients %q: want positive counts separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// benchServers starts every server, warms each up with one request and measures every
// point on them in turn: a point's requests are split into rounds, and the servers take
// the rounds in alternation (ABBA…), each alone while it is measured, as do the points of
// one mix. The machine's speed drifts by a tenth and more over tens of seconds; measured
// one after the other, the servers, or the points, would see different machines.
func benchServers(ctx context.Context, servers []benchServer, clients []int, perClient, maxTok int, w io.Writer) ([]servePoint, error) {
	// A fresh connection per request: llama-server closes kept-alive connections after a
	// few requests, and a POST that meets a closing connection fails rather than retries.
	// Both servers pay the same loopback connect.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	urls := make([]string, len(servers))
	for i, s := range servers {
		fmt.Fprintf(w, "bench: starting %s\n", s.name)
		proc, err := s.start(ctx)
		if err != nil {
			return nil, fmt.Errorf("bench: starting %s: %w", s.name, err)
		}
		defer proc.stop()
		warm := streamOnce(ctx, hc, proc.url, s, "0"+serveBenchPrompt, 0, maxTok)
		if warm.err != nil {
			return nil, fmt.Errorf("bench: warm-up request to %s: %w\n%s", s.name, warm.err, proc.tail())
		}
		urls[i] = proc.url
	}
	var out []servePoint
	base := 0 // the point's first request number
	for _, mix := range []string{"one", "mixed"} {
		// The points of one mix take their rounds in turn too (round 1 of each client
		// count, then round 2 of each, …), so that the ratio between two points, such as 8
		// streams against one, sees the same drift as the ratio between the servers: with
		// each point measured whole, in one go, the same build's 8-stream ratio read 2.2×
		// and 2.9× in two runs.
		type point struct {
			n, per, rounds, base int
			merged               []servePoint
		}
		var points []point
		most := 0
		for _, n := range clients {
			base += 100_000
			per := max(perClient, (minPointRequests+n-1)/n)
			pt := point{n: n, per: per, rounds: pointRounds(per), base: base, merged: make([]servePoint, len(servers))}
			points = append(points, pt)
			most = max(most, pt.rounds)
		}
		turn := 0 // rounds measured so far: the servers' order alternates with it (ABBA…)
		for r := range most {
			for _, pt := range points {
				if r >= pt.rounds {
					continue
				}
				for k := range servers {
					i := k
					if turn%2 == 1 {
						i = len(servers) - 1 - k
					}
					first := r * pt.per / pt.rounds
					// Both servers' compute threads spin for about 150 ms after their
					// last decode before they sleep (ggml's polling thread pool, OpenMP);
					// measured, that took both cores from the next server's first
					// requests. Each round starts once the previous one's spin is over.
					time.Sleep(roundSettle)
					p := runPoint(ctx, hc, urls[i], servers[i], mix, pt.n, pt.base+first, (r+1)*pt.per/pt.rounds-first, maxTok)
					pt.merged[i].merge(p)
				}
				turn++
			}
		}
		for _, pt := range points {
			for i, p := range pt.merged {
				fmt.Fprintf(w, "bench: %s, %s, %d clients: %d requests in %d rounds, %d errors, %.1f tok/s\n",
					servers[i].name, mixLabel(mix), pt.n, p.Requests, pt.rounds, p.Errors, p.tokensPerSec())
				if p.firstErr != nil {
					fmt.Fprintf(w, "bench: first error: %v\n", p.firstErr)
				}
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// roundRatios lists a over b round by round, for a ratio of two points whose rounds ran in
// turn: each pair saw the machine of the same few seconds, so their spread shows how much
// of the whole ratio is the machine's drift.
func roundRatios(a, b []float64) string {
	if len(a) != len(b) || len(a) < 2 {
		return ""
	}
	parts := make([]string, len(a))
	for i := range a {
		parts[i] = fmt.Sprintf("%.2f", a[i]/b[i])
	}
	return "; round by round " + strings.Join(parts, ", ")
}

// roundSettle is the pause before each round of a point (see benchServers).
const roundSettle = 300 * time.Millisecond

// pointRounds splits a point's per-client requests into rounds of at least two each (a
// round of one would measure every client's start and finish and little between).
func pointRounds(perClient int) int { return max(1, min(4, perClient/2)) }

// merge adds round q of a point to p.
func (p *servePoint) merge(q servePoint) {
	if p.Server == "" {
		p.Server, p.Mix, p.Clients, p.texts = q.Server, q.Mix, q.Clients, map[int]string{}
	}
	p.Requests += q.Requests
	p.Errors += q.Errors
	p.Tokens += q.Tokens
	p.Wall += q.Wall
	p.TTFT = append(p.TTFT, q.TTFT...)
	p.Rounds = append(p.Rounds, q.tokensPerSec())
	if p.firstErr == nil {
		p.firstErr = q.firstErr
	}
	for k, t := range q.texts {
		p.texts[k] = t
	}
}

// minPointRequests is the fewest requests a point sends, however few its clients: one
// client's 4 requests last a fraction of a second, which the machine's noise swamps. At
// 32 a point, once one stream ran at about 650 tok/s (3 s a server), the one-client and
// 8-client ratios moved by 10-15% between runs.
const minPointRequests = 64

// runPoint has n clients send perClient streamed requests each, one after another: client
// c sends requests first+1000c+1 to first+1000c+perClient. No request number, and so no
// prompt, comes twice in a bench: llama-server reuses a slot's cache for a prompt it has
// seen, which would measure that instead of decoding.
func runPoint(ctx context.Context, hc *http.Client, url string, s benchServer, mix string, n, first, perClient, maxTok int) servePoint {
	p := servePoint{Server: s.name, Mix: mix, Clients: n, Requests: n * perClient, texts: map[int]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for cl := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perClient {
				k := first + cl*1000 + j + 1 // request number; 0 was the warm-up
				adapter := 0
				if mix == "mixed" {
					adapter = k % serveBenchAdapters
				}
				r := streamOnce(ctx, hc, url, s, strconv.Itoa(k)+serveBenchPrompt, adapter, maxTok)
				mu.Lock()
				if r.err != nil {
					p.Errors++
					if p.firstErr == nil {
						p.firstErr = r.err
					}
				} else {
					p.Tokens += r.tokens
					p.TTFT = append(p.TTFT, r.ttft)
					p.texts[k] = r.text
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	p.Wall = time.Since(start)
	return p
}

// streamResult is one streamed request: time to its first text, tokens and text generated.
type streamResult struct {
	ttft   time.Duration
	tokens int
	text   string
	err    error
}

// streamOnce sends one streamed /v1/completions request and reads its server-sent events.
// Tokens are the usage's completion_tokens when the server sends it, else the chunks
// that carried text.
func streamOnce(ctx context.Context, hc *http.Client, url string, s benchServer, prompt string, adapter, maxTok int) streamResult {
	body, err := s.body(prompt, adapter, maxTok)
	if err != nil {
		return streamResult{err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/completions", bytes.NewReader(body))
	if err != nil {
		return streamResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return streamResult{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return streamResult{err: fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))}
	}
	var r streamResult
	var text strings.Builder
	chunks, usage := 0, -1
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			break
		}
		var ev struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return streamResult{err: fmt.Errorf("an event that is not JSON: %q", data)}
		}
		if len(ev.Error) > 0 {
			return streamResult{err: fmt.Errorf("error event: %s", ev.Error)}
		}
		if len(ev.Choices) > 0 && ev.Choices[0].Text != "" {
			if chunks == 0 {
				r.ttft = time.Since(start)
			}
			chunks++
			text.WriteString(ev.Choices[0].Text)
		}
		if ev.Usage != nil {
			usage = ev.Usage.CompletionTokens
		}
	}
	if err := sc.Err(); err != nil {
		return streamResult{err: err}
	}
	if chunks == 0 {
		return streamResult{err: errors.New("the stream carried no text")}
	}
	r.tokens, r.text = chunks, text.String()
	if usage >= 0 {
		r.tokens = usage
	}
	return r
}

// percentile returns the nearest-rank q-quantile of ds (0 when empty).
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// printServeBench prints one row per adapter mix and client count with both servers side
// by side, then the targets: ecotune ≥ llama-server everywhere, 8 streams ≥ 3× one.
func printServeBench(o io.Writer, points []servePoint, servers []benchServer, clients []int, model string, threads, parallel, maxTok int) {
	find := func(server, mix string, n int) *servePoint {
		for i := range points {
			if p := &points[i]; p.Server == server && p.Mix == mix && p.Clients == n {
				return p
			}
		}
		return nil
	}
	peer := len(servers) > 1
	fmt.Fprintf(o, "model %s, %d threads, --parallel %d, %d tokens a request, greedy, streamed /v1/completions\n\n", model, threads, parallel, maxTok)
	fmt.Fprint(o, "| adapters | clients | requests | ecotune tok/s | ecotune TTFT p50 / p99 ms |")
	if peer {
		fmt.Fprint(o, " llama-server tok/s | llama-server TTFT p50 / p99 ms | ecotune ÷ llama-server |")
	}
	fmt.Fprint(o, " errors |\n| --- | ---: | ---: | ---: | ---: |")
	if peer {
		fmt.Fprint(o, " ---: | ---: | ---: |")
	}
	fmt.Fprintln(o, " ---: |")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f", d.Seconds()*1e3) }
	allAhead := true
	for _, mix := range []string{"one", "mixed"} {
		for _, n := range clients {
			e := find(servers[0].name, mix, n)
			errs := e.Errors
			fmt.Fprintf(o, "| %s | %d | %d | %.1f | %s / %s |", mix, n, e.Requests, e.tokensPerSec(), ms(percentile(e.TTFT, 0.5)), ms(percentile(e.TTFT, 0.99)))
			if peer {
				l := find(servers[1].name, mix, n)
				errs += l.Errors
				ratio := e.tokensPerSec() / l.tokensPerSec()
				allAhead = allAhead && ratio >= 1
				fmt.Fprintf(o, " %.1f | %s / %s | %.2f× |", l.tokensPerSec(), ms(percentile(l.TTFT, 0.5)), ms(percentile(l.TTFT, 0.99)), ratio)
			}
			fmt.Fprintf(o, " %d |\n", errs)
		}
	}
	fmt.Fprintln(o)
	if peer {
		fmt.Fprintf(o, "target ecotune ≥ llama-server at every point: %s\n", metOrNot(allAhead))
	}
	if slices.Contains(clients, 1) && slices.Contains(clients, 8) {
		for _, s := range servers {
			for _, mix := range []string{"one", "mixed"} {
				eight, one := find(s.name, mix, 8), find(s.name, mix, 1)
				r := eight.tokensPerSec() / one.tokensPerSec()
				fmt.Fprintf(o, "%s, %s: 8 streams = %.2f× one stream (target ≥ 3×: %s)%s\n", s.name, mixLabel(mix), r, metOrNot(r >= 3), roundRatios(eight.Rounds, one.Rounds))
			}
		}
	}
	if peer {
		same, total := 0, 0
		for _, p := range points {
			if p.Server != servers[0].name {
				continue
			}
			l := find(servers[1].name, p.Mix, p.Clients)
			for k, t := range p.texts {
				if lt, ok := l.texts[k]; ok {
					total++
					if lt == t {
						same++
					}
				}
			}
		}
		fmt.Fprintf(o, "greedy outputs identical between the servers: %d of %d requests\n", same, total)
	}
}

// mixLabel names an adapter mix in the bench's output.
func mixLabel(mix string) string {
	if mix == "one" {
		return "one adapter"
	}
	return "three adapters mixed"
}

func metOrNot(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
