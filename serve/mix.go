package serve

import (
	"slices"

	"github.com/ecotune/ecotune/bindings"
)

// maxMixed is the most adapters a mixed step applies: unstacked, each adds two small
// products, a scaling and an addition per adapted weight for every token (stacked, a few
// columns' products of its own), so past a handful the turns are cheaper.
const maxMixed = 8

// mixedKey is what the context has applied in a mixed step; no set has it.
const mixedKey = "\x00mixed"

// mixed returns, when this step can serve several busy adapter sets together, the
// adapters to apply and each slot's scale of each (0 for a free slot or another set's
// adapter). The list is every loaded adapter in load order, those being unloaded as long
// as a request holds them: it changes only when adapters load or unload, and a new list
// costs llama.cpp a re-plan of its graph, where new scales cost nothing. stacked says
// whether the context is in the mode now, its adapters stacked: then one busy set stays
// in it too, since a turn on the whole-context adapters and the way back would re-plan
// the graph twice (about 2.5 ms each on the 24m shape, 2–5 times a round of 8 clients),
// and a stacked step of one set costs what its turn's does (one sequence's steps 0.88–1.01×,
// six alternated pairs on the 2-core Xeon of BENCHMARKS.md's fourteenth session).
func (e *Engine) mixed(s slots, stacked bool) (list []*bindings.Adapter, table [][]float32, ok bool) {
	if !e.opts.Mix || e.noMix {
		return nil, nil, false
	}
	keys := map[string]bool{}
	for _, j := range s {
		if j != nil {
			keys[j.set.key] = true
		}
	}
	if len(keys) < 2 && !stacked {
		return nil, nil, false
	}
	entries := e.adapters.all()
	slices.SortFunc(entries, func(a, b *adapterEntry) int { return a.ID - b.ID })
	for _, en := range entries {
		if !en.unloading || slices.ContainsFunc(s, func(j *job) bool { return j != nil && slices.Contains(j.set.entries, en) }) {
			list = append(list, en.a)
		}
	}
	if len(list) > maxMixed {
		return nil, nil, false
	}
	table = make([][]float32, e.lctx.NSeqMax())
	for i := range table {
		table[i] = make([]float32, len(list))
		if i >= len(s) || s[i] == nil {
			continue
		}
		for _, as := range s[i].set.scales {
			k := slices.Index(list, as.Adapter)
			if k < 0 {
				return nil, nil, false // not in the registry: cannot happen while held
			}
			table[i][k] = as.Scale
		}
	}
	return list, table, true
}
