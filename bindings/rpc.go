package bindings

/*
#include <stdlib.h>
#include "ggml-backend.h"
#include "ggml-rpc.h"

// The RPC backend is reached through the registry, as llama.cpp's own --rpc does, so a
// build without it answers "not found" instead of failing to link.
typedef ggml_backend_reg_t (*ecotune_rpc_add_server_fn)(const char *endpoint);

static ggml_backend_reg_t ecotune_rpc_add_server(void *fn, const char *endpoint) {
	return ((ecotune_rpc_add_server_fn)fn)(endpoint);
}
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// ErrRPCUnavailable is wrapped by the error LoadModel returns when ModelOptions.RPCServers
// names a server that cannot be reached or does not speak ggml's RPC protocol.
var ErrRPCUnavailable = errors.New("rpc-server unavailable")

// rpcProbeTimeout bounds the connection and the HELLO exchange of the Go-side probe.
const rpcProbeTimeout = 5 * time.Second

// Wire facts of ggml's RPC protocol (ggml/src/ggml-rpc at the pinned commit) that the probe
// needs: the HELLO command's number is fixed across protocol versions, and its request and
// reply carry 24 bytes of transport capabilities (zero: plain TCP).
const (
	rpcCmdHello     = 14
	rpcConnCapsSize = 24
	rpcHelloRspSize = 4 + rpcConnCapsSize // major, minor, patch, padding, capabilities
)

// rpcMaxServers is the most endpoints ggml's RPC client takes in one process.
const rpcMaxServers = C.GGML_RPC_MAX_SERVERS

// validateRPCEndpoints checks each endpoint's syntax as ggml's client will read it: an IPv4
// address or host name, a colon and a port. ggml splits at the first colon and resolves
// with gethostbyname, so IPv6 literals cannot work and are refused here.
func validateRPCEndpoints(endpoints []string) error {
	if len(endpoints) > rpcMaxServers {
		return fmt.Errorf("%d RPC servers: ggml's RPC backend takes at most %d", len(endpoints), rpcMaxServers)
	}
	seen := map[string]bool{}
	for _, ep := range endpoints {
		host, port, err := net.SplitHostPort(ep)
		if err != nil {
			return fmt.Errorf("RPC server %q: want HOST:PORT: %w", ep, err)
		}
		if host == "" {
			return fmt.Errorf("RPC server %q: the host is empty", ep)
		}
		if strings.Contains(host, ":") {
			return fmt.Errorf("RPC server %q: ggml's RPC client speaks IPv4 only; give an IPv4 address or host name", ep)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("RPC server %q: port %q is not a number from 1 to 65535", ep, port)
		}
		if seen[ep] {
			return fmt.Errorf("RPC server %q is listed twice", ep)
		}
		seen[ep] = true
	}
	return nil
}

// probeRPCServer connects to endpoint and exchanges ggml's HELLO with it, so that an
// unreachable server, another program on the port or a protocol version this build cannot
// speak becomes a Go error: ggml's client aborts the process on each of these.
// rpc-server serves one client at a time, so a server busy with another client does not
// answer and the probe times out saying so.
func probeRPCServer(endpoint string) error {
	conn, err := net.DialTimeout("tcp4", endpoint, rpcProbeTimeout)
	if err != nil {
		return fmt.Errorf("RPC server %s: %w: %w (is rpc-server running there?)", endpoint, ErrRPCUnavailable, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(rpcProbeTimeout)); err != nil {
		return fmt.Errorf("RPC server %s: %w", endpoint, err)
	}
	req := make([]byte, 1+8+rpcConnCapsSize)
	req[0] = rpcCmdHello
	binary.LittleEndian.PutUint64(req[1:9], rpcConnCapsSize)
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("RPC server %s: %w: sending HELLO: %w (is it a llama.cpp rpc-server?)", endpoint, ErrRPCUnavailable, err)
	}
	rsp := make([]byte, 8+rpcHelloRspSize)
	if _, err := io.ReadFull(conn, rsp); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("RPC server %s: %w: no HELLO reply within %s (rpc-server serves one client at a time: is another one using it?)",
				endpoint, ErrRPCUnavailable, rpcProbeTimeout)
		}
		return fmt.Errorf("RPC server %s: %w: reading the HELLO reply: %w (is it a llama.cpp rpc-server?)", endpoint, ErrRPCUnavailable, err)
	}
	if n := binary.LittleEndian.Uint64(rsp[:8]); n != rpcHelloRspSize {
		return fmt.Errorf("RPC server %s: %w: a HELLO reply of %d bytes, not %d (is it a llama.cpp rpc-server?)", endpoint, ErrRPCUnavailable, n, rpcHelloRspSize)
	}
	major, minor, patch := rsp[8], rsp[9], rsp[10]
	if major != C.RPC_PROTO_MAJOR_VERSION || minor > C.RPC_PROTO_MINOR_VERSION {
		return fmt.Errorf("RPC server %s: %w: it speaks RPC protocol %d.%d.%d, this build %d.%d.%d: use an rpc-server built from the same llama.cpp",
			endpoint, ErrRPCUnavailable, major, minor, patch,
			C.RPC_PROTO_MAJOR_VERSION, C.RPC_PROTO_MINOR_VERSION, C.RPC_PROTO_PATCH_VERSION)
	}
	return nil
}

// rpcDevices probes every endpoint, adds it to ggml's RPC backend and returns its devices
// followed by the local GPUs, the order llama.cpp's own --rpc uses (remote first, so that
// the layers next to the output stay local). ggml owns the devices and keeps one
// registration per endpoint for the life of the process; what a model allocates on them
// is freed with the model, which closes its connections.
func rpcDevices(endpoints []string) ([]C.ggml_backend_dev_t, error) {
	if err := validateRPCEndpoints(endpoints); err != nil {
		return nil, err
	}
	for _, ep := range endpoints {
		if err := probeRPCServer(ep); err != nil {
			return nil, err
		}
	}
	cname := C.CString("RPC")
	defer C.free(unsafe.Pointer(cname))
	reg := C.ggml_backend_reg_by_name(cname)
	if reg == nil {
		return nil, errors.New("this build of llama.cpp has no RPC backend (build it with GGML_RPC=ON, as `make native` does)")
	}
	cfn := C.CString("ggml_backend_rpc_add_server")
	defer C.free(unsafe.Pointer(cfn))
	add := C.ggml_backend_reg_get_proc_address(reg, cfn)
	if add == nil {
		return nil, errors.New("llama.cpp's RPC backend has no ggml_backend_rpc_add_server")
	}
	var devs []C.ggml_backend_dev_t
	for _, ep := range endpoints {
		cep := C.CString(ep)
		sreg := C.ecotune_rpc_add_server(add, cep)
		C.free(unsafe.Pointer(cep))
		if sreg == nil {
			return nil, fmt.Errorf("RPC server %s: %w: it reports no devices", ep, ErrRPCUnavailable)
		}
		for i := C.size_t(0); i < C.ggml_backend_reg_dev_count(sreg); i++ {
			devs = append(devs, C.ggml_backend_reg_dev_get(sreg, i))
		}
	}
	// Integrated GPUs only when there is no discrete one, as llama.cpp chooses by default.
	var gpus, igpus []C.ggml_backend_dev_t
	for i := C.size_t(0); i < C.ggml_backend_dev_count(); i++ {
		dev := C.ggml_backend_dev_get(i)
		switch C.ggml_backend_dev_type(dev) {
		case C.GGML_BACKEND_DEVICE_TYPE_GPU:
			gpus = append(gpus, dev)
		case C.GGML_BACKEND_DEVICE_TYPE_IGPU:
			igpus = append(igpus, dev)
		}
	}
	if len(gpus) == 0 {
		gpus = igpus
	}
	return append(devs, gpus...), nil
}
