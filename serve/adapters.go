package serve

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ecotune/ecotune/bindings"
)

// AdapterInfo describes a loaded adapter.
type AdapterInfo struct {
	ID    int     // stable for the adapter's lifetime, for the llama-server style "lora" field
	Name  string  // what requests call it by ("model": Name)
	Path  string  // the GGUF it was loaded from
	Scale float32 // applied when a request names the adapter as its model
	Rank  int
	Alpha float32
	InUse int // requests that hold it now
}

// adapterEntry is one loaded adapter and the requests holding it.
type adapterEntry struct {
	AdapterInfo
	a         *bindings.Adapter
	unloading bool
	idle      chan struct{} // closed when unloading and the last holder lets go
}

// registry is the engine's adapters by name. Requests hold entries from Submit to their
// end, so an adapter is freed only once no sequence decodes with it.
type registry struct {
	mu     sync.Mutex
	byName map[string]*adapterEntry
	nextID int
}

func newRegistry() *registry { return &registry{byName: map[string]*adapterEntry{}} }

// add registers a loaded adapter under name.
func (r *registry) add(name, path string, scale float32, a *bindings.Adapter) (AdapterInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byName[name]; ok {
		return AdapterInfo{}, fmt.Errorf("an adapter named %q is already loaded; unload it first", name)
	}
	e := &adapterEntry{AdapterInfo: AdapterInfo{ID: r.nextID, Name: name, Path: path, Scale: scale, Rank: a.Rank(), Alpha: a.Alpha()}, a: a}
	r.nextID++
	r.byName[name] = e
	return e.AdapterInfo, nil
}

// list returns the adapters that requests may use, by ID.
func (r *registry) list() []AdapterInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]AdapterInfo, 0, len(r.byName))
	for _, e := range r.byName {
		if !e.unloading {
			info := e.AdapterInfo
			out = append(out, info)
		}
	}
	slices.SortFunc(out, func(a, b AdapterInfo) int { return a.ID - b.ID })
	return out
}

// usableLocked returns the adapter named name unless it is unloading; the caller holds r.mu.
func (r *registry) usableLocked(name string) *adapterEntry {
	if e := r.byName[name]; e != nil && !e.unloading {
		return e
	}
	return nil
}

// adapterSet is the adapters one request decodes with, held until release.
type adapterSet struct {
	key     string // equal for requests that can share a decode step
	scales  []bindings.AdapterScale
	entries []*adapterEntry
}

// acquire resolves refs to a held set; entries with scale 0 are left out, and a name
// given twice keeps its last scale.
func (r *registry) acquire(refs []AdapterRef) (*adapterSet, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	scale := map[*adapterEntry]float32{}
	var order []*adapterEntry
	for _, ref := range refs {
		e := r.usableLocked(ref.Name)
		if e == nil {
			return nil, fmt.Errorf("adapter %q: %w", ref.Name, ErrUnknownAdapter)
		}
		if _, seen := scale[e]; !seen {
			order = append(order, e)
		}
		scale[e] = ref.Scale
	}
	set := &adapterSet{}
	slices.SortFunc(order, func(a, b *adapterEntry) int { return a.ID - b.ID })
	var key strings.Builder
	for _, e := range order {
		if scale[e] == 0 {
			continue
		}
		e.InUse++
		set.entries = append(set.entries, e)
		set.scales = append(set.scales, bindings.AdapterScale{Adapter: e.a, Scale: scale[e]})
		fmt.Fprintf(&key, "%d:%s;", e.ID, strconv.FormatFloat(float64(scale[e]), 'g', -1, 32))
	}
	set.key = key.String()
	return set, nil
}

// release lets go of a set acquire returned.
func (r *registry) release(set *adapterSet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range set.entries {
		e.InUse--
		if e.InUse == 0 && e.unloading {
			close(e.idle)
		}
	}
	set.entries = nil
}

// startUnload hides name from new requests and returns its entry; idle is closed once the
// last request holding it ends.
func (r *registry) startUnload(name string) (*adapterEntry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byName[name]
	if e == nil || e.unloading {
		return nil, fmt.Errorf("adapter %q: %w", name, ErrUnknownAdapter)
	}
	e.unloading = true
	e.idle = make(chan struct{})
	if e.InUse == 0 {
		close(e.idle)
	}
	return e, nil
}

// remove forgets an entry startUnload returned.
func (r *registry) remove(e *adapterEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byName[e.Name] == e {
		delete(r.byName, e.Name)
	}
}

// all returns every entry, for Close.
func (r *registry) all() []*adapterEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*adapterEntry, 0, len(r.byName))
	for _, e := range r.byName {
		out = append(out, e)
	}
	return out
}

// nameByID returns the name of the usable adapter with the given ID.
func (r *registry) nameByID(id int) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.byName {
		if e.ID == id && !e.unloading {
			return e.Name, true
		}
	}
	return "", false
}
