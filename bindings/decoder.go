package bindings

/*
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "llama.h"

// ecotune_decoder runs a context's llama_decode calls on a thread of its own; the Go side
// waits for each on an eventfd (see decoder).
typedef struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	struct llama_context * ctx;
	struct llama_batch batch;
	int pending, quit, ret, efd;
} ecotune_decoder;

static void * ecotune_decoder_run(void * p) {
	ecotune_decoder * d = p;
	pthread_mutex_lock(&d->mu);
	for (;;) {
		while (!d->pending && !d->quit)
			pthread_cond_wait(&d->cv, &d->mu);
		if (d->quit)
			break;
		pthread_mutex_unlock(&d->mu);
		int r = llama_decode(d->ctx, d->batch);
		pthread_mutex_lock(&d->mu);
		d->ret = r;
		d->pending = 0;
		uint64_t one = 1;
		while (write(d->efd, &one, sizeof one) < 0 && errno == EINTR) {}
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

// ecotune_decoder_new starts the thread; NULL if it could not.
static ecotune_decoder * ecotune_decoder_new(struct llama_context * ctx) {
	ecotune_decoder * d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->ctx = ctx;
	d->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->efd < 0) {
		free(d);
		return NULL;
	}
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	if (pthread_create(&d->thread, NULL, ecotune_decoder_run, d) != 0) {
		close(d->efd);
		pthread_cond_destroy(&d->cv);
		pthread_mutex_destroy(&d->mu);
		free(d);
		return NULL;
	}
	return d;
}

static void ecotune_decoder_submit(ecotune_decoder * d, struct llama_batch b) {
	pthread_mutex_lock(&d->mu);
	d->batch = b;
	d->pending = 1;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

static int ecotune_decoder_result(ecotune_decoder * d) {
	pthread_mutex_lock(&d->mu);
	int r = d->ret;
	pthread_mutex_unlock(&d->mu);
	return r;
}

// ecotune_decoder_free joins the thread (idle: the caller waited for its last decode) and
// frees d; the eventfd belongs to the Go side's file.
static void ecotune_decoder_free(ecotune_decoder * d) {
	pthread_mutex_lock(&d->mu);
	d->quit = 1;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thread, NULL);
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	free(d);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
)

// decoder is a context's decode thread, started by its first decode. A cgo call that
// computes a graph on as many threads as cores leaves Go's scheduler room to preempt the
// compute threads: past 10 ms sysmon takes the call's P back and then wakes every 20 µs
// for a while (a 143m step of 13 ms on 2 cores: ggml's worker preempted 17 times a step),
// and at shorter steps Go's other threads still land on the compute threads' cores (a
// 24m step of 8 sequences, 2.5 ms: the calling thread and ggml's worker preempted about 7
// times a step together, on the decoder thread about 4). A goroutine waiting on the
// thread's eventfd is parked, not in a cgo call, so its P goes on running the other
// goroutines and sysmon has nothing to take back. The hand-off (a condition variable and
// an eventfd, some 10-30 µs) costs less than it spares even at 24m's 1 ms steps: against
// short steps on the caller's thread, one stream a median 5% faster in the engine over ten
// alternated pairs (-2 to +22%) and 15% in one server run, 8 streams 4% and 7% (a 2-core
// Xeon, BENCHMARKS.md).
type decoder struct {
	d    *C.ecotune_decoder
	done *os.File // the eventfd the thread signals after each decode
}

func newDecoder(ctx *C.struct_llama_context) (*decoder, error) {
	d := C.ecotune_decoder_new(ctx)
	if d == nil {
		return nil, errors.New("bindings: could not start a decode thread")
	}
	// Non-blocking, so os.File waits in Go's netpoller rather than in a system call.
	return &decoder{d: d, done: os.NewFile(uintptr(d.efd), "ecotune-decoder")}, nil
}

// decode runs llama_decode(ctx, b) on the thread and waits for it.
func (d *decoder) decode(b C.struct_llama_batch) (int32, error) {
	C.ecotune_decoder_submit(d.d, b)
	var buf [8]byte
	if _, err := d.done.Read(buf[:]); err != nil {
		// The thread still runs the decode; nothing else may touch the context. Only a
		// closed file fails a read, and close waits for the thread.
		return 0, fmt.Errorf("bindings: decode thread: %w", err)
	}
	return int32(C.ecotune_decoder_result(d.d)), nil
}

// close stops the thread; no decode may be in flight.
func (d *decoder) close() {
	C.ecotune_decoder_free(d.d)
	d.done.Close()
}
