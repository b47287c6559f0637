package serve

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// layout makes slots from a string: a letter is a request of that adapter set, '.' a
// free slot.
func layout(l string) slots {
	s := make(slots, len(l))
	sets := map[rune]*adapterSet{}
	for i, r := range l {
		if r == '.' {
			continue
		}
		if sets[r] == nil {
			sets[r] = &adapterSet{key: string(r)}
		}
		s[i] = &job{set: sets[r], group: string(r)}
	}
	return s
}

func (s slots) String() string {
	var b strings.Builder
	for _, j := range s {
		if j == nil {
			b.WriteByte('.')
		} else {
			b.WriteString(j.set.key)
		}
	}
	return b.String()
}

// admitPlanned does what Engine.approach does, moving jobs in s instead of sequences, and
// places a request of set key; it returns the shifts it took.
func admitPlanned(s slots, key string) int {
	h, moves := s.route(key)
	if h < 0 {
		h = s.place(key)
	}
	for _, m := range moves {
		require.Nil(nil, s[m.to])
		s[m.to], s[m.from] = s[m.from], nil
		h = m.from
	}
	if h >= 0 {
		s[h] = &job{set: &adapterSet{key: key}, group: key}
	}
	return len(moves)
}

func TestRouteKeepsRunsWhole(t *testing.T) {
	for _, c := range []struct {
		before, key, after string
		shifts             int
	}{
		{"AAAAB.BBCCCC", "A", "AAAAABBBCCCC", 1}, // the hole splits B: B's near end moves
		{"AAAABBB.CCCC", "A", "AAAAABBBCCCC", 1},
		{"AAAABBBC.CCC", "A", "AAAAABBBCCCC", 2}, // across B's run too
		{"B.BA", "A", "BBAA", 1},                 // the left end stops the walk; right it is
		{"AAA.BBB", "B", "AAABBBB", 0},           // already touching
		{"AA.B.CC", "C", "AA.BCCC", 0},           // the free slot next to C, not the one next to A
		{"AAA.", "D", "AAAD", 0},                 // a new set takes place's slot
		{"AB.C.", "C", "ABCC.", 0},
		{"DDD.DD", "C", "CDDDDD", 1}, // a new set does not split a run
	} {
		s := layout(c.before)
		n := admitPlanned(s, c.key)
		assert.Equal(t, c.after, s.String(), c.before+" + "+c.key)
		assert.Equal(t, c.shifts, n, c.before+" + "+c.key)
	}
}

// TestRouteUnderSteadyLoad: every slot busy, each set one run; a request ends anywhere
// and one of any set takes its place. The runs stay one a set, in at most as many shifts
// as there are other sets.
func TestRouteUnderSteadyLoad(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := "ABCDE"
	for range 2000 {
		var b strings.Builder
		for b.Len() < 32 {
			k := keys[rng.IntN(len(keys))]
			b.WriteString(strings.Repeat(string(k), 1+rng.IntN(8)))
		}
		l := b.String()[:32]
		s := layout(l)
		// Sets appear in one run each: rebuild from the runs' order to drop repeats.
		seen := map[string]bool{}
		for i := range s {
			if i > 0 && s[i].set.key != s[i-1].set.key && seen[s[i].set.key] {
				s[i].set, s[i].group = s[i-1].set, s[i-1].group
			}
			seen[s[i].set.key] = true
		}
		s[rng.IntN(32)] = nil
		before := s.String()
		key := string(keys[rng.IntN(len(keys))])
		n := admitPlanned(s, key)
		distinct := map[string]bool{}
		for _, j := range s {
			require.NotNil(t, j, before)
			distinct[j.set.key] = true
		}
		require.Equal(t, len(distinct), s.runs(), "%s + %s gave %s", before, key, s)
		require.LessOrEqual(t, n, len(distinct)-1, "%s + %s", before, key)
	}
}
