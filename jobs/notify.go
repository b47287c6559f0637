package jobs

import "sync"

// notifier wakes the watchers of a job (event streams, waits) when it changes.
type notifier struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

func newNotifier() *notifier { return &notifier{subs: map[string]map[chan struct{}]struct{}{}} }

// subscribe returns a channel that receives after each change of job, and its cancel.
func (n *notifier) subscribe(job string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	if n.subs[job] == nil {
		n.subs[job] = map[chan struct{}]struct{}{}
	}
	n.subs[job][ch] = struct{}{}
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		delete(n.subs[job], ch)
		if len(n.subs[job]) == 0 {
			delete(n.subs, job)
		}
		n.mu.Unlock()
	}
}

func (n *notifier) notify(job string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.subs[job] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
