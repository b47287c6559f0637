package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ecotuneServer runs this binary's `serve` on a port it picks and prints.
func ecotuneServer(exe, model string, adapters []string, threads, parallel, nctx int, extra []string) benchServer {
	args := []string{"serve", "-m", model, "--port", "0", "--threads", strconv.Itoa(threads),
		"--parallel", strconv.Itoa(parallel), "--ctx", strconv.Itoa(nctx), "--queue", "1024"}
	args = append(args, extra...)
	for i, a := range adapters {
		args = append(args, "--adapter", fmt.Sprintf("a%d=%s", i, a))
	}
	listening := regexp.MustCompile(`listening on (http://\S+)`)
	return benchServer{
		name: "ecotune serve",
		start: func(ctx context.Context) (*serverProc, error) {
			return startServer(ctx, exe, args, func(line string) string {
				if m := listening.FindStringSubmatch(line); m != nil {
					return m[1]
				}
				return ""
			})
		},
		body: func(prompt string, adapter, maxTok int) ([]byte, error) {
			return json.Marshal(map[string]any{"model": fmt.Sprintf("a%d", adapter), "prompt": prompt, "max_tokens": maxTok,
				"temperature": 0, "stream": true, "stream_options": map[string]any{"include_usage": true}})
		},
	}
}

// llamaServer runs llama.cpp's llama-server with the adapters loaded at scale 0, each
// request raising its own to 1 with the "lora" field.
func llamaServer(tool, model string, adapters []string, threads, parallel, nctx int) benchServer {
	return benchServer{
		name: "llama-server",
		start: func(ctx context.Context) (*serverProc, error) {
			port, err := freeLoopbackPort()
			if err != nil {
				return nil, err
			}
			args := []string{"-m", model, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
				"-t", strconv.Itoa(threads), "-tb", strconv.Itoa(threads), "-np", strconv.Itoa(parallel),
				"-c", strconv.Itoa(parallel * nctx), "--lora-init-without-apply"}
			for _, a := range adapters {
				args = append(args, "--lora", a)
			}
			url := fmt.Sprintf("http://127.0.0.1:%d", port)
			p, err := startServer(ctx, tool, args, nil)
			if err != nil {
				return nil, err
			}
			if err := waitHealthy(ctx, url, p); err != nil {
				p.stop()
				return nil, err
			}
			p.url = url
			return p, nil
		},
		body: func(prompt string, adapter, maxTok int) ([]byte, error) {
			// cache_prompt off: every prompt begins with BOS, "▁" and the request number's
			// leading digits, which llama-server otherwise took from its slot's previous
			// request (5 to 7 of 33 tokens), a prefix cache ecotune does not have; the
			// bench measures decoding and batching.
			return json.Marshal(map[string]any{"prompt": prompt, "max_tokens": maxTok, "temperature": 0,
				"stream": true, "stream_options": map[string]any{"include_usage": true}, "cache_prompt": false,
				"lora": []map[string]any{{"id": adapter, "scale": 1}}})
		},
	}
}

// serverProc is a running server process and the last lines it printed.
type serverProc struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{} // closed when its output has been read to the end

	mu    sync.Mutex
	lines []string
}

// startServer starts name with args; with ready set, it waits until ready returns the URL
// from a line of the server's output.
func startServer(ctx context.Context, name string, args []string, ready func(line string) string) (*serverProc, error) {
	cmd := exec.Command(name, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serverProc{cmd: cmd, done: make(chan struct{})}
	urls := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, line)
			if len(p.lines) > 30 {
				p.lines = p.lines[1:]
			}
			p.mu.Unlock()
			if ready != nil {
				if u := ready(line); u != "" {
					urls <- u
					ready = nil
				}
			}
		}
	}()
	if ready == nil {
		return p, nil
	}
	select {
	case p.url = <-urls:
		return p, nil
	case <-p.done:
		p.stop()
		return nil, fmt.Errorf("%s exited before listening:\n%s", filepath.Base(name), p.tail())
	case <-time.After(5 * time.Minute):
	case <-ctx.Done():
	}
	p.stop()
	return nil, fmt.Errorf("%s did not start listening:\n%s", filepath.Base(name), p.tail())
}

// waitHealthy polls url/health until it answers 200 (llama-server answers 503 while loading).
func waitHealthy(ctx context.Context, url string, p *serverProc) error {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was healthy:\n%s", p.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("not healthy within 5 minutes:\n%s", p.tail())
}

// stop asks the server to end (SIGTERM), then kills it after 10 s.
func (p *serverProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd.Wait()
}

func (p *serverProc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// freeLoopbackPort returns a port nothing listens on at the time of the call.
func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
