package trainer

import (
	"cmp"
	"slices"
)

// packRows groups items of the given sizes (each at least 1) into rows holding at most
// capacity in all (a larger item gets a row of its own), best fit decreasing: the
// largest item first, each into the fullest row it fits. It returns each row's item
// indices in ascending order, the rows ordered by their first item, so that a shuffled
// item order gives a shuffled row order. How many rows it makes depends only on the
// multiset of sizes, not on their order.
func packRows(sizes []int, capacity int) [][]int {
	idx := make([]int, len(sizes))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(sizes[b], sizes[a]) })
	var rows [][]int
	var left []int // places left in each row
	// free[c] lists the rows with c places left: the best fit for an item of size s is
	// the first row found looking up from free[s].
	free := make([][]int, capacity+1)
	for _, i := range idx {
		s := min(sizes[i], capacity)
		r := -1
		for c := s; c <= capacity && r < 0; c++ {
			if n := len(free[c]); n > 0 {
				r, free[c] = free[c][n-1], free[c][:n-1]
			}
		}
		if r < 0 {
			r = len(rows)
			rows, left = append(rows, nil), append(left, capacity)
		}
		rows[r] = append(rows[r], i)
		left[r] -= s
		free[left[r]] = append(free[left[r]], r)
	}
	for _, r := range rows {
		slices.Sort(r)
	}
	slices.SortFunc(rows, func(a, b []int) int { return cmp.Compare(a[0], b[0]) })
	return rows
}
