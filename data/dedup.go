package data

import "fmt"

// Dedup selects how duplicate records are found.
type Dedup string

// De-duplication modes. Normalised comparison folds case, whitespace and
// punctuation, so "What is CO2?" and "what is co2" are one example.
const (
	DedupNone       Dedup = "none"
	DedupExact      Dedup = "exact"
	DedupNormalized Dedup = "normalized"
)

// ParseDedup checks a de-duplication mode name; "" means normalized.
func ParseDedup(s string) (Dedup, error) {
	switch d := Dedup(s); d {
	case "":
		return DedupNormalized, nil
	case DedupNone, DedupExact, DedupNormalized:
		return d, nil
	}
	return "", fmt.Errorf("unknown dedup mode %q (want none, exact or normalized)", s)
}

// hashSet is an open-addressing set of 64-bit content hashes. At the scale
// of a 1 GB dataset (millions of records) keeping the strings would cost
// gigabytes; 8 bytes a record (16 at worst load) is enough, and a 64-bit
// collision between two different records is vanishingly unlikely.
type hashSet struct {
	slots []uint64 // 0 marks an empty slot; hash 0 is stored as 1
	n     int
}

// add inserts h and reports whether it was new.
func (s *hashSet) add(h uint64) bool {
	if h == 0 {
		h = 1
	}
	if s.n*2 >= len(s.slots) {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	for i := mix64(h) & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return false
		case 0:
			s.slots[i] = h
			s.n++
			return true
		}
	}
}

func (s *hashSet) grow() {
	old := s.slots
	s.slots = make([]uint64, max(1024, 2*len(old)))
	s.n = 0
	for _, h := range old {
		if h != 0 {
			s.add(h)
		}
	}
}

// deduper remembers the content seen so far.
type deduper struct {
	mode Dedup
	seen hashSet
}

// duplicate reports whether a record with these hashes was seen before,
// and remembers it.
func (d *deduper) duplicate(exact, folded uint64) bool {
	switch d.mode {
	case DedupExact:
		return !d.seen.add(exact)
	case DedupNormalized:
		return !d.seen.add(folded)
	}
	return false
}
