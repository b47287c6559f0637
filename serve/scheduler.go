package serve

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ecotune/ecotune/bindings"
)

// The scheduling policy (docs/serve.md):
//   - Requests wait in arrival order and take the first free sequence slot.
//   - libllama applies adapters to a whole context, so one decode step serves one adapter
//     set. A set keeps the context for a turn of Options.Turn steps (fewer if its requests
//     end), then the next set in a fixed order that has a slot holding work takes it: with
//     k sets busy each gets one turn in k, so none starves. Turns longer than one step pay
//     for what a switch costs: llama.cpp re-plans its compute graph (sched_reserve)
//     whenever the adapters change.
//   - With Options.Mix, several sets busy and at most maxMixed adapters loaded, the context
//     applies every loaded adapter per sequence instead (ecotune's patch to llama.cpp,
//     bindings.Context.SetSeqAdapters): every busy slot decodes in one step, each token
//     adapted by its own set. Where each set is one adapter, of one rank for all in F32,
//     each token computes its own adapter's products alone, gathered by adapter in one
//     graph node a weight, which costs about what one adapter does; otherwise each token
//     computes every adapter's product and adds it times its own scale, 0 for those of
//     other sets. Either way the sum is its set's alone, to the bit. Requests then take
//     slots in one run whatever their set, as libllama decodes a graph per run of
//     consecutive slots. Stacked, the mode stays when one set is left (see mixed).
//   - In a step, the slots it serves that are still reading their prompts decode them, up
//     to Batch prompt tokens in all, chunks of one length under 64 tokens together in one
//     batch (as several requests that arrive at once bring) and others alone; then every
//     slot it serves that is generating decodes one token together. A prompt is thus
//     decoded to the bit as `ecotune generate` decodes it, and a generated token depends
//     only on its own sequence, so a request's output does not depend on what else is
//     running: the context is batch-invariant (bindings.ContextOptions.BatchInvariant), so
//     the rows decoded beside a token do not change even the rounding of its products
//     (see groupedPromptMax).

// slots is the scheduler's view of the context's sequences.
type slots []*job

// run is the scheduler goroutine: it owns every call into the context.
func (e *Engine) run() {
	defer close(e.done)
	s := make(slots, e.opts.Parallel)
	batch, err := bindings.NewBatch(e.opts.Batch, 1)
	if err != nil {
		e.failAll(s, err)
		return
	}
	defer batch.Close()
	applied := "" // the adapter set the context has now (the base alone at start)
	last := ""    // the set the previous step served
	turn := 0     // steps left in last's turn

	for {
		// Commands (adapter unloads) and shutdown first, then new requests.
		select {
		case f := <-e.cmds:
			f()
			continue
		case <-e.stop:
			e.failAll(s, ErrClosed)
			return
		default:
		}
		e.admit(s)
		e.reap(s)
		e.compact(s)
		if s.idle() {
			select {
			case <-e.wake:
			case f := <-e.cmds:
				f()
			case <-e.stop:
				e.failAll(s, ErrClosed)
				return
			}
			continue
		}
		if list, table, ok := e.mixed(s, applied == mixedKey && e.lctx.SeqAdaptersStacked()); ok {
			if err := e.lctx.SetSeqAdapters(list, table); err != nil {
				// An adapter the mode refuses (ranks differ within it): turns from now on.
				e.noMix = !errors.Is(err, bindings.ErrClosed)
			} else {
				applied = mixedKey
				e.step(s, func(*job) bool { return true }, batch, e.lctx.SeqAdaptersStacked())
				continue
			}
		}
		set := s.setOf(last)
		if set == nil || turn <= 0 {
			set, turn = s.nextSet(last), e.opts.Turn
		}
		last = set.key
		turn--
		if applied != set.key {
			if err := e.lctx.SetAdapters(set.scales); err != nil {
				e.failSet(s, set.key, fmt.Errorf("serve: apply adapters: %w", err))
				continue
			}
			applied = set.key
		}
		e.step(s, func(j *job) bool { return j.set.key == set.key }, batch, false)
	}
}

// admit moves waiting requests into free slots, in arrival order.
func (e *Engine) admit(s slots) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.pending) > 0 {
		j := e.pending[0]
		if j.ctx.Err() != nil {
			e.pending = e.pending[1:]
			e.roomLocked()
			e.mu.Unlock()
			e.end(j, Result{}, j.ctx.Err())
			e.mu.Lock()
			continue
		}
		j.group = j.set.key
		if e.opts.Mix {
			j.group = "" // sets decode together: one run of busy slots is best
		}
		i := e.approach(s, j.group)
		if i < 0 {
			break
		}
		e.pending = e.pending[1:]
		e.roomLocked()
		j.seq, j.admitted = int32(i), time.Now()
		s[i] = j
		e.busy.Add(1)
	}
	e.wait.Store(int32(len(e.pending)))
}

// roomLocked tells SubmitWait callers to try again: a request left the queue or a slot
// freed, either of which may make room (a queue that emptied only by cancellations, with
// no admission after, would otherwise leave them waiting forever). e.mu is held.
func (e *Engine) roomLocked() {
	close(e.room)
	e.room = make(chan struct{})
}

// place picks the free slot for a request of adapter set key, or -1 when none is free.
// libllama decodes the sequences of one batch as one graph only while their ids run
// consecutively (its memory keeps a stream per sequence), so a set's slots are kept
// together: the slot that joins or extends a run of the set's slots is best, then one
// between free slots (leaving room for others to grow), then any.
func (s slots) place(key string) int {
	best, bestScore := -1, -1
	for i := range s {
		if s[i] == nil && s.score(i, key) > bestScore {
			best, bestScore = i, s.score(i, key)
		}
	}
	return best
}

// score rates free slot i for a request of set key by its neighbours: 4 for each of the
// set's slots, 1 for each free one.
func (s slots) score(i int, key string) int {
	score := 0
	for _, n := range []int{i - 1, i + 1} {
		switch {
		case n < 0 || n >= len(s):
		case s[n] == nil:
			score++
		case s[n].group == key:
			score += 4
		}
	}
	return score
}

// compact moves running requests into free slots while that joins runs of an adapter
// set's slots: libllama decodes one graph per run of consecutive sequence ids, so every
// hole a finished request leaves costs a whole extra pass over the weights each step. A
// move copies the sequence's memory to its new slot byte for byte (llama.cpp copies the
// stream), so what the request generates does not change.
func (e *Engine) compact(s slots) {
	if !e.holes {
		return
	}
	e.holes = false
	for range len(s) {
		best, from, to := s.runs(), -1, -1
		for i := range s {
			if s[i] != nil {
				continue
			}
			for k := range s {
				if s[k] == nil {
					continue
				}
				s[i], s[k] = s[k], nil
				if r := s.runs(); r < best {
					best, from, to = r, k, i
				}
				s[k], s[i] = s[i], nil
			}
		}
		if from < 0 {
			return
		}
		if e.move(s, from, to) != nil {
			return // decode as they are
		}
	}
}

// approach picks the free slot for a request of adapter set key, or -1 when none is
// free. When no free slot touches the set's slots, it walks the free slot nearest to them
// (in runs to cross) there: each run of another set between them shifts by one slot, its
// far end moving into the free one, so every run stays whole. With every slot busy, as
// under steady load, a finished request's slot lies wherever that request ran, and a new
// request of another set placed there would split a run; a shift copies one sequence's
// memory, while a split costs a whole extra graph (a pass over the weights) every step its
// set decodes, for as long as both requests run.
func (e *Engine) approach(s slots, key string) int {
	h, moves := s.route(key)
	if h < 0 {
		return s.place(key)
	}
	for _, m := range moves {
		if e.move(s, m.from, m.to) != nil {
			return s.place(key)
		}
		h = m.from
	}
	return h
}

// shift is one move of a request from slot from to the free slot to.
type shift struct{ from, to int }

// route returns the free slot that the fewest shifts bring next to a slot of set key,
// with those shifts in order; for a set holding no slot, the free slot that the fewest
// shifts bring out of the middle of another set's run. Among slots that need none it
// takes place's choice. It returns -1 when no free slot can be brought there: none is
// free, or other free slots separate every one from the set.
func (s slots) route(key string) (int, []shift) {
	has := slices.ContainsFunc(s, func(j *job) bool { return j != nil && j.group == key })
	best, bestMoves := -1, []shift(nil)
	for h := range s {
		if s[h] != nil {
			continue
		}
		for _, dir := range []int{-1, 1} {
			var moves []shift
			ok := true
			if has {
				moves, ok = s.walk(h, dir, key)
			} else if s.splits(h) {
				moves = []shift{{from: s.runEnd(h+dir, dir), to: h}}
			}
			if ok && (best < 0 || len(moves) < len(bestMoves) ||
				len(moves) == len(bestMoves) && len(moves) == 0 && s.score(h, key) > s.score(best, key)) {
				best, bestMoves = h, moves
			}
		}
	}
	return best, bestMoves
}

// splits reports whether free slot h lies inside one set's run, between two of its slots.
func (s slots) splits(h int) bool {
	return h > 0 && h+1 < len(s) && s[h-1] != nil && s[h+1] != nil && s[h-1].group == s[h+1].group
}

// runEnd returns the last slot, going from busy slot n in direction dir (±1), of the run
// of n's set that holds n.
func (s slots) runEnd(n, dir int) int {
	for f := n + dir; f >= 0 && f < len(s) && s[f] != nil && s[f].group == s[n].group; f += dir {
		n = f
	}
	return n
}

// walk plans the shifts that carry free slot h in direction dir (±1) until it touches a
// slot of set key; ok is false when an end or another free slot comes first.
func (s slots) walk(h, dir int, key string) (moves []shift, ok bool) {
	in := func(i int) bool { return i >= 0 && i < len(s) && s[i] != nil }
	for {
		n := h + dir
		if !in(n) {
			return nil, false
		}
		if s[n].group == key {
			return moves, true
		}
		far := s.runEnd(n, dir)
		moves = append(moves, shift{from: far, to: h})
		h = far
	}
}

// move gives slot from's request the free slot to, copying its sequence's memory byte
// for byte (llama.cpp copies the whole stream), so what it generates does not change. An
// error means the context cannot move sequences and nothing moved, or that the request
// was retired.
func (e *Engine) move(s slots, from, to int) error {
	j := s[from]
	if err := e.lctx.SeqCopy(j.seq, int32(to), -1, -1); err != nil {
		return err
	}
	if err := e.lctx.SeqRemove(j.seq, -1, -1); err != nil {
		e.lctx.SeqRemove(int32(to), -1, -1)
		e.retire(s, from, Result{}, err)
		return err
	}
	s[to], s[from] = j, nil
	j.seq = int32(to)
	return nil
}

// runs counts, over the adapter sets, the runs of consecutive slots holding one set.
func (s slots) runs() int {
	n := 0
	for i, j := range s {
		if j != nil && (i == 0 || s[i-1] == nil || s[i-1].group != j.group) {
			n++
		}
	}
	return n
}

// reap frees the slots of requests whose context ended (a client that went away).
func (e *Engine) reap(s slots) {
	for i, j := range s {
		if j != nil && j.ctx.Err() != nil {
			e.retire(s, i, Result{}, j.ctx.Err())
		}
	}
}

func (s slots) idle() bool {
	for _, j := range s {
		if j != nil {
			return false
		}
	}
	return true
}

// setOf returns the busy adapter set with the given key, or nil.
func (s slots) setOf(key string) *adapterSet {
	for _, j := range s {
		if j != nil && j.set.key == key {
			return j.set
		}
	}
	return nil
}

// nextSet returns the busy adapter set that follows last in key order, wrapping around.
func (s slots) nextSet(last string) *adapterSet {
	var keys []string
	sets := map[string]*adapterSet{}
	for _, j := range s {
		if j != nil && sets[j.set.key] == nil {
			sets[j.set.key] = j.set
			keys = append(keys, j.set.key)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k > last {
			return sets[k]
		}
	}
	return sets[keys[0]]
}

// step decodes one prompt chunk and one generated token for every generating slot of the
// set; stacked says whether a mixed step's adapters share one pair of products (Event).
func (e *Engine) step(s slots, serves func(*job) bool, batch *bindings.Batch, stacked bool) {
	start := time.Now()
	decoded, seqs := 0, 0
	sets := map[string]bool{}
	// Prompt chunks, up to Batch prompt tokens a step: every prompt waiting is read in one
	// step, so requests join the generating batch as soon as they can, unless one long
	// prompt already fills the step.
	budget := e.opts.Batch
	var chunks []promptChunk
	for i, j := range s {
		if budget <= 0 {
			break
		}
		if j == nil || !serves(j) || j.fed == len(j.prompt) {
			continue
		}
		n := min(len(j.prompt)-j.fed, batch.Cap())
		budget -= n
		chunks = append(chunks, promptChunk{slot: i, n: n})
	}
	batches := 0
	for len(chunks) > 0 {
		var group []promptChunk
		group, chunks = nextGroup(chunks, batch.Cap())
		d, q := e.decodePrompts(s, group, batch, sets)
		decoded, seqs, batches = decoded+d, seqs+q, batches+1
	}
	// One token for every generating slot of the set.
	batch.Clear()
	var rows []int
	for i, j := range s {
		if j == nil || !serves(j) || j.fed < len(j.prompt) || j.first.IsZero() {
			continue
		}
		batch.Add(j.next, j.pos, []int32{j.seq}, true)
		rows = append(rows, i)
	}
	if len(rows) > 0 {
		batches++
		if err := e.lctx.Decode(batch); err != nil {
			for _, i := range rows {
				e.retire(s, i, Result{}, fmt.Errorf("serve: decode: %w", err))
			}
		} else {
			decoded += len(rows)
			seqs += len(rows)
			for k, i := range rows {
				s[i].pos++
				sets[s[i].set.key] = true
				e.emit(s, i, k)
			}
		}
	}
	if h := e.hook.Load(); h != nil && decoded > 0 {
		(*h)(Event{Tokens: decoded, Seqs: seqs, Sets: len(sets), Batches: batches, Took: time.Since(start), Stacked: stacked})
	}
}

// promptChunk is the next n tokens of slot's prompt.
type promptChunk struct{ slot, n int }

// groupedPromptMax is the longest chunk decoded beside others. A batch of several
// sequences' chunks of one length is computed as each chunk alone would be: llama.cpp
// gives each sequence its own stream of the context (its own attention over its own
// cache, the same query count), and each value of a product is summed the same way
// whatever the number of columns (bindings.ContextOptions.BatchInvariant). From 64
// queries a sequence, ggml's CPU flash attention takes its tiled path, whose rows are
// split among the threads by the whole batch; that is not shown to keep each row's
// bits, so such chunks stay alone.
const groupedPromptMax = 63

// nextGroup takes from chunks the first one and every later one of its length, when that
// length may be grouped, as many as fit a batch of the given capacity; it returns them and the
// chunks left, in their order. Sequences with equal chunks decode in one graph (a run of
// consecutive sequence ids, see place) where alone each would read all the weights.
func nextGroup(chunks []promptChunk, capacity int) (group, rest []promptChunk) {
	n := chunks[0].n
	for _, c := range chunks {
		if c.n == n && (len(group) == 0 || n <= groupedPromptMax && (len(group)+1)*n <= capacity) {
			group = append(group, c)
		} else {
			rest = append(rest, c)
		}
	}
	return group, rest
}

// decodePrompts decodes the chunks of one group in one batch and hands each prompt that
// ends to emit; it returns the tokens decoded and the prompts ended. A failed decode ends
// every request of the group: libllama may have stored part of the batch in the memory.
func (e *Engine) decodePrompts(s slots, group []promptChunk, batch *bindings.Batch, sets map[string]bool) (decoded, ended int) {
	batch.Clear()
	for _, c := range group {
		j := s[c.slot]
		last := j.fed+c.n == len(j.prompt)
		for k, t := range j.prompt[j.fed : j.fed+c.n] {
			batch.Add(t, int32(j.fed+k), []int32{j.seq}, last && k == c.n-1)
		}
	}
	if err := e.lctx.Decode(batch); err != nil {
		for _, c := range group {
			e.retire(s, c.slot, Result{}, fmt.Errorf("serve: decode prompt: %w", err))
		}
		return 0, 0
	}
	for k, c := range group {
		j := s[c.slot]
		j.fed += c.n
		j.pos = int32(j.fed)
		decoded += c.n
		if j.fed == len(j.prompt) {
			ended++
			sets[j.set.key] = true
			e.emit(s, c.slot, k*c.n+c.n-1)
		}
	}
	return decoded, ended
}

// emit samples slot i's next token from batch row idx and hands it to the reader,
// retiring the request when it ends (as bindings.Generate ends a generation).
func (e *Engine) emit(s slots, i, idx int) {
	j := s[i]
	var lp []float32
	if j.req.Logprobs >= 0 {
		logits, err := e.lctx.Logits(idx)
		if err != nil {
			e.retire(s, i, Result{}, err)
			return
		}
		lp = logSoftmax(logits)
	}
	tok, err := j.sampler.Sample(e.lctx, idx)
	if err != nil {
		e.retire(s, i, Result{}, err)
		return
	}
	if j.first.IsZero() {
		j.first = time.Now()
	}
	m := e.model
	if m.IsEOG(tok) {
		if rest := j.text.Flush(); rest != "" {
			j.out.push(Token{ID: tok, Text: rest})
		}
		e.retire(s, i, j.result(FinishStop), nil)
		return
	}
	piece, err := m.TokenToPiece(tok, false)
	if err != nil {
		e.retire(s, i, Result{}, err)
		return
	}
	j.produced++
	// The position the token will take: the sequence is full when it is past the end.
	atLimit := j.req.MaxTokens > 0 && j.produced >= j.req.MaxTokens
	full := int(j.pos) >= e.opts.Ctx
	text, stopped := j.text.Push(piece)
	if (atLimit || full) && !stopped {
		text += j.text.Flush()
	}
	t := Token{ID: tok, Text: text, Piece: piece}
	if lp != nil {
		t.Logprob = lp[tok]
		t.Top = e.topLogprobs(lp, j.req.Logprobs)
	}
	j.out.push(t)
	switch {
	case stopped:
		e.retire(s, i, j.result(FinishStop), nil)
	case atLimit || full:
		e.retire(s, i, j.result(FinishLength), nil)
	default:
		j.next = tok
	}
}

func (j *job) result(reason string) Result {
	now := time.Now()
	return Result{
		FinishReason: reason, PromptTokens: len(j.prompt), CompletionTokens: j.produced,
		Queued: j.admitted.Sub(j.queued), PromptEval: j.first.Sub(j.admitted), Eval: now.Sub(j.first),
	}
}

// retire ends slot i's request and frees its sequence.
func (e *Engine) retire(s slots, i int, r Result, err error) {
	j := s[i]
	s[i] = nil
	e.busy.Add(-1)
	e.mu.Lock()
	e.roomLocked()
	e.mu.Unlock()
	e.holes = true
	if rmErr := e.lctx.SeqRemove(j.seq, -1, -1); rmErr != nil && err == nil {
		err = rmErr
	}
	if err != nil && r.PromptTokens == 0 {
		r = Result{PromptTokens: len(j.prompt), CompletionTokens: j.produced}
	}
	e.end(j, r, err)
}

// end releases a job and tells its reader.
func (e *Engine) end(j *job, r Result, err error) {
	e.release(j)
	j.out.finish(r, err)
}

// failSet ends every request of one adapter set.
func (e *Engine) failSet(s slots, key string, err error) {
	for i, j := range s {
		if j != nil && j.set.key == key {
			e.retire(s, i, Result{}, err)
		}
	}
}

// failAll ends every running and waiting request.
func (e *Engine) failAll(s slots, err error) {
	for i, j := range s {
		if j != nil {
			e.retire(s, i, Result{}, err)
		}
	}
	e.mu.Lock()
	pending := e.pending
	e.pending = nil
	e.wait.Store(0)
	e.mu.Unlock()
	for _, j := range pending {
		e.end(j, Result{}, err)
	}
}
