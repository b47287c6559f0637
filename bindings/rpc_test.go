//go:build cgo

package bindings

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/internal/testenv"
)

func TestValidateRPCEndpoints(t *testing.T) {
	many := make([]string, rpcMaxServers+1)
	for i := range many {
		many[i] = "127.0.0.1:" + strconv.Itoa(50000+i)
	}
	for _, tc := range []struct {
		name      string
		endpoints []string
		wantErr   string // "" = valid
	}{
		{"ipv4 and names", []string{"127.0.0.1:50052", "node-2.cluster:1"}, ""},
		{"no port", []string{"127.0.0.1"}, "want HOST:PORT"},
		{"no host", []string{":50052"}, "host is empty"},
		{"ipv6", []string{"[::1]:50052"}, "IPv4 only"},
		{"port zero", []string{"h:0"}, "not a number from 1 to 65535"},
		{"port too big", []string{"h:65536"}, "not a number from 1 to 65535"},
		{"port not a number", []string{"h:http"}, "not a number from 1 to 65535"},
		{"twice", []string{"h:1", "h:1"}, "listed twice"},
		{"too many", many, "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validateRPCEndpoints(tc.endpoints)
			if tc.wantErr == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tc.wantErr)
			}
		})
	}
}

// fakeRPCServer listens on loopback and answers each connection with reply (after reading
// a HELLO request when readHello is set); it stops when the test ends.
func fakeRPCServer(t *testing.T, readHello bool, reply []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			if readHello {
				io.ReadFull(conn, make([]byte, 1+8+rpcConnCapsSize))
			}
			conn.Write(reply)
			conn.Close()
		}
	}()
	return ln.Addr().String()
}

// freePort returns a loopback port nothing listens on at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// TestRPCServerFaultsAreErrors checks that every way an endpoint can be wrong comes back as
// an error: ggml's own client aborts the process on each of them.
func TestRPCServerFaultsAreErrors(t *testing.T) {
	requireStories(t)
	badVersion := make([]byte, 8+rpcHelloRspSize)
	binary.LittleEndian.PutUint64(badVersion, rpcHelloRspSize)
	badVersion[8] = 99
	for _, tc := range []struct {
		name     string
		endpoint string
		wantErr  string
	}{
		{"nothing listening", "127.0.0.1:" + strconv.Itoa(freePort(t)), "is rpc-server running there?"},
		{"closes at once", fakeRPCServer(t, false, nil), "is it a llama.cpp rpc-server?"},
		{"speaks HTTP", fakeRPCServer(t, true, []byte("HTTP/1.1 400 Bad Request\r\n\r\n")), "is it a llama.cpp rpc-server?"},
		{"another protocol version", fakeRPCServer(t, true, badVersion), "speaks RPC protocol 99."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadModel(storiesPath, ModelOptions{GPULayers: -1, RPCServers: []string{tc.endpoint}})
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrRPCUnavailable)
			assert.ErrorContains(t, err, tc.endpoint)
			assert.ErrorContains(t, err, tc.wantErr)
		})
	}
	t.Run("no layers", func(t *testing.T) {
		_, err := LoadModel(storiesPath, ModelOptions{RPCServers: []string{"127.0.0.1:1"}})
		assert.ErrorContains(t, err, "GPULayers 0 would hold no layer")
	})
}

// startRPCServer runs llama.cpp's rpc-server on a loopback port and returns its endpoint
// once it accepts connections; the process is killed when the test ends.
func startRPCServer(t *testing.T, tool string) string {
	t.Helper()
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	// One thread: the servers share this machine's cores with the test.
	cmd := exec.CommandContext(ctx, tool, "-H", "127.0.0.1", "-p", strconv.Itoa(port), "-t", "1")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	var tail []string
	var mu sync.Mutex
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		s := bufio.NewScanner(out)
		for s.Scan() {
			mu.Lock()
			tail = append(tail, s.Text())
			if len(tail) > 20 {
				tail = tail[1:]
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		<-drained
		if t.Failed() {
			mu.Lock()
			t.Logf("rpc-server on port %d said:\n%s", port, strings.Join(tail, "\n"))
			mu.Unlock()
		}
	})
	endpoint := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(20 * time.Second)
	for {
		// A bare connect and close: the server takes it as a client that went away.
		conn, err := net.DialTimeout("tcp4", endpoint, time.Second)
		if err == nil {
			conn.Close()
			return endpoint
		}
		if time.Now().After(deadline) {
			t.Fatalf("rpc-server did not listen on %s within 20 s: %v", endpoint, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// greedyTokens loads stories260K with opts and returns n greedy tokens after prompt.
func greedyTokens(t *testing.T, opts ModelOptions, prompt string, n int) []int32 {
	t.Helper()
	m, err := LoadModel(storiesPath, opts)
	require.NoError(t, err)
	defer m.Close()
	c, err := NewContext(m, ContextOptions{NCtx: 256, Threads: 1})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var ids []int32
	for tok, err := range Generate(ctx, c, prompt, GenerateOptions{MaxTokens: n}) {
		require.NoError(t, err)
		ids = append(ids, tok.ID)
	}
	return ids
}

// TestRPCLoopbackMatchesLocal places every layer of stories260K on two rpc-servers on
// loopback and checks that greedy decoding gives the local CPU run's tokens exactly: the
// servers run the same ggml CPU kernels on the same graph, so no tolerance is needed.
// It then loads the model again on the same servers, which works only if closing the first
// model released its connections (rpc-server serves one client at a time).
func TestRPCLoopbackMatchesLocal(t *testing.T) {
	requireStories(t)
	tool := testenv.Tool(t, "ggml-rpc-server")
	const prompt, n = "Once upon a time", 40

	want := greedyTokens(t, ModelOptions{}, prompt, n)
	require.Len(t, want, n)

	servers := []string{startRPCServer(t, tool), startRPCServer(t, tool)}
	rec := &recorder{}
	SetLogger(slog.New(rec))
	got := greedyTokens(t, ModelOptions{GPULayers: -1, RPCServers: servers}, prompt, n)
	SetLogger(testLogger)
	assert.Equal(t, want, got, "greedy tokens over RPC differ from the local run")

	// Each server must hold part of the model, or the test would prove nothing about a split.
	var placed []string
	for _, l := range rec.lines(slog.LevelInfo, true) {
		if strings.Contains(l, "model buffer size") || strings.Contains(l, "layers to GPU") {
			placed = append(placed, l)
		}
	}
	for _, ep := range servers {
		assert.True(t, slices.ContainsFunc(placed, func(l string) bool { return strings.Contains(l, "["+ep+"] model buffer size") }),
			"no weights placed on %s; llama.cpp placed:\n%s", ep, strings.Join(placed, "\n"))
	}
	// stories260K's 5 blocks and its output layer.
	assert.True(t, slices.ContainsFunc(placed, func(l string) bool { return strings.Contains(l, "offloaded 6/6 layers") }),
		"not every layer offloaded:\n%s", strings.Join(placed, "\n"))

	again := greedyTokens(t, ModelOptions{GPULayers: -1, RPCServers: servers}, prompt, 8)
	assert.Equal(t, want[:8], again, "second load on the same servers")
}

// TestRPCOneServerDownIsAnError lists a live server and a dead one and checks that the load
// names the dead one instead of aborting, before ggml has connected to either.
func TestRPCOneServerDownIsAnError(t *testing.T) {
	requireStories(t)
	tool := testenv.Tool(t, "ggml-rpc-server")
	port := freePort(t)
	endpoint := "127.0.0.1:" + strconv.Itoa(port)
	_, err := LoadModel(storiesPath, ModelOptions{GPULayers: -1, RPCServers: []string{startRPCServer(t, tool), endpoint}})
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrRPCUnavailable), "%v", err)
	assert.ErrorContains(t, err, endpoint)
}
