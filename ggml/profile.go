//go:build cgo

package ggml

/*
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include "ggml.h"
#include "ggml-backend.h"

typedef struct {
	struct ggml_tensor * t;
	int64_t ns;
} ecotune_node_time;

typedef struct {
	int64_t start;
	int n, cap;
	ecotune_node_time * rec;
} ecotune_profile;

static int64_t ecotune_now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Asked about every node, the scheduler computes them one at a time, so the time from
// the question to the answer is that node's.
static bool ecotune_profile_cb(struct ggml_tensor * t, bool ask, void * ud) {
	ecotune_profile * p = (ecotune_profile *) ud;
	if (ask) {
		p->start = ecotune_now_ns();
		return true;
	}
	if (p->n < p->cap) {
		p->rec[p->n].t = t;
		p->rec[p->n].ns = ecotune_now_ns() - p->start;
		p->n++;
	}
	return true;
}

static void ecotune_sched_profile(ggml_backend_sched_t s, ecotune_profile * p) {
	ggml_backend_sched_set_eval_callback(s, p ? ecotune_profile_cb : NULL, p);
}
*/
import "C"

import (
	"sort"
	"strings"
	"time"
	"unsafe"
)

// OpTime is the time the nodes of one kind took in a profiled run.
type OpTime struct {
	Op    string        `json:"op"` // ggml's op name, with the first operand's type for products (MUL_MAT q4_K), the name of a fused op (CUSTOM attention)
	Nodes int           `json:"nodes"`
	Time  time.Duration `json:"ns"`
}

// RunProfiled computes an allocated graph like Run, one node at a time, and returns
// the time per kind of node, longest first. Waiting for each node makes the whole run
// slower than Run, most for graphs of many small nodes.
func (s *Scheduler) RunProfiled(g *Graph) ([]OpTime, error) {
	sch := s.live()
	n := g.Len()
	p := (*C.ecotune_profile)(C.calloc(1, C.size_t(unsafe.Sizeof(C.ecotune_profile{}))))
	defer C.free(unsafe.Pointer(p))
	p.cap = C.int(n)
	p.rec = (*C.ecotune_node_time)(C.calloc(C.size_t(n+1), C.size_t(unsafe.Sizeof(C.ecotune_node_time{}))))
	defer C.free(unsafe.Pointer(p.rec))
	C.ecotune_sched_profile(sch, p)
	defer C.ecotune_sched_profile(sch, nil)
	if err := s.Run(g); err != nil {
		return nil, err
	}
	byOp := map[string]*OpTime{}
	for _, r := range unsafe.Slice(p.rec, int(p.n)) {
		op := C.GoString(C.ggml_op_desc(r.t))
		if (r.t.op == C.GGML_OP_MUL_MAT || r.t.op == C.GGML_OP_OUT_PROD) && r.t.src[0] != nil {
			op += " " + Type(r.t.src[0]._type).String()
		}
		if r.t.op == C.GGML_OP_CUSTOM {
			// The fused ops are named for what they compute; gradient checkpointing's
			// recomputed copies add a suffix.
			op += " " + strings.TrimSuffix(C.GoString(&r.t.name[0]), " (re)")
		}
		o := byOp[op]
		if o == nil {
			o = &OpTime{Op: op}
			byOp[op] = o
		}
		o.Nodes++
		o.Time += time.Duration(r.ns)
	}
	out := make([]OpTime, 0, len(byOp))
	for _, o := range byOp {
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time > out[j].Time })
	return out, nil
}
