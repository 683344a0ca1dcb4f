package topology

// The internals that the external tests (package topology_test) check: the
// exact strategies of the best-set search, run one by one.

// ExactLimit is the largest group the exact strategies take.
const ExactLimit = exactLimit

// Candidate is what one strategy offers: the set and its pairwise sum (Sum
// -1: none).
type Candidate struct {
	Set GPUSet
	Sum float64
}

// ExactStrategies runs, on every level of s and every connected group of
// free's 2-core at that level, each exact strategy (the subset DP and the
// branch and bound) for every size k from 3 to the group's size, and hands f
// the level's bandwidth, the group, k and the two answers (bnbDone: the
// branch and bound finished within its budget).
func ExactStrategies(s *Shape, free GPUSet, f func(level float64, comp GPUSet, k int, dp, bnb Candidate, bnbDone bool)) {
	for l, level := range s.levels {
		adj := s.adj[l]
		for rest := twoCore(free, adj); rest != 0; {
			comp := component(rest, adj)
			rest &^= comp
			for k := 3; k <= comp.Len(); k++ {
				dp := candidate{sum: -1}
				s.dpSearch(comp, k, adj, &dp)
				bnb := candidate{sum: -1}
				done := s.bnbSearch(comp, k, adj, 1<<40, &bnb)
				f(level, comp, k, Candidate{dp.set, dp.sum}, Candidate{bnb.set, bnb.sum}, done)
			}
		}
	}
}
