package topology

import (
	"math/bits"
	"sync"
)

// hamDFSBudget is the number of search steps the depth-first Hamiltonian-cycle
// search may take before an exact subset DP takes over (or, for sets too big
// for the DP, before the search gives up and reports no cycle).
const (
	hamDFSBudget      = 4096
	hamDFSBudgetLarge = 1 << 14
	// hamDPMax is the largest set the subset DP handles (2^19 uint32 = 2 MiB).
	hamDPMax = 20
)

// hamiltonian reports whether the graph adj restricted to set has a
// Hamiltonian cycle. adj[i] is i's neighbour set. Sets of 1 GPU count as a
// cycle, sets of 2 when the pair is linked. Exact for sets of up to hamDPMax
// GPUs; bigger sets may get a false negative when the search budget runs out.
func hamiltonian(set GPUSet, adj []GPUSet) bool {
	budget := hamDFSBudget
	if set.Len() > hamDPMax {
		budget = hamDFSBudgetLarge
	}
	ok, decided := hamCheck(set, adj, &budget)
	switch {
	case decided:
		return ok
	case set.Len() > hamDPMax:
		return false
	default:
		return hamDP(set, adj)
	}
}

// hamCheck decides whether adj restricted to set has a Hamiltonian cycle with
// cheap necessary and sufficient conditions, then a depth-first search that
// spends *budget steps. decided is false when the budget ran out.
func hamCheck(set GPUSet, adj []GPUSet, budget *int) (ok, decided bool) {
	k := set.Len()
	switch k {
	case 0:
		return false, true
	case 1:
		return true, true
	case 2:
		i := set.Lowest()
		return adj[i]&set != 0, true
	}
	minDeg := k
	for t := uint64(set); t != 0; t &= t - 1 {
		d := (adj[LowBit(t)] & set).Len()
		if d < 2 {
			return false, true
		}
		minDeg = min(minDeg, d)
	}
	if !connected(set, adj) {
		return false, true
	}
	if 2*minDeg >= k { // Dirac's theorem
		return true, true
	}
	if a, b, ok := bipartition(set, adj); ok && a.Len() != b.Len() {
		// A ring alternates sides, so a bipartite set needs equal sides.
		return false, true
	}
	h := hamSearch{adj: adj, set: set, start: set.Lowest(), budget: *budget}
	found := h.dfs(h.start, GPUSet(1)<<uint(h.start), 1, k)
	*budget = h.budget
	if found {
		return true, true
	}
	return false, h.budget >= 0
}

// bipartition 2-colours the connected set in adj; ok is false when set has an
// odd cycle (is not bipartite).
func bipartition(set GPUSet, adj []GPUSet) (a, b GPUSet, ok bool) {
	a = set & -set
	frontier, side := a, 0
	seen := a
	for frontier != 0 {
		next := neighbours(frontier, adj) & set &^ seen
		seen |= next
		side ^= 1
		if side == 1 {
			b |= next
		} else {
			a |= next
		}
		frontier = next
	}
	if neighbours(a, adj)&a != 0 || neighbours(b, adj)&b != 0 {
		return 0, 0, false
	}
	return a, b, true
}

// connected reports whether set is connected in adj.
func connected(set GPUSet, adj []GPUSet) bool {
	return component(set, adj) == set
}

type hamSearch struct {
	adj    []GPUSet
	set    GPUSet
	start  int
	budget int
}

// dfs extends a path start..cur over visited (n vertices) to a Hamiltonian
// cycle of k vertices. It returns false when the budget runs out (budget < 0).
func (h *hamSearch) dfs(cur int, visited GPUSet, n, k int) bool {
	if n == k {
		return h.adj[cur].Has(h.start)
	}
	h.budget--
	if h.budget < 0 {
		return false
	}
	rest := h.set &^ visited
	// Every unvisited vertex needs a way in and a way out among the unvisited
	// vertices, the path's end and the start.
	ends := rest | GPUSet(1)<<uint(cur) | GPUSet(1)<<uint(h.start)
	for t := uint64(rest); t != 0; t &= t - 1 {
		if (h.adj[LowBit(t)] & ends).Len() < 2 {
			return false
		}
	}
	for t := uint64(h.adj[cur] & rest); t != 0; t &= t - 1 {
		v := LowBit(t)
		if h.dfs(v, visited|GPUSet(1)<<uint(v), n+1, k) {
			return true
		}
		if h.budget < 0 {
			return false
		}
	}
	return false
}

var dpPool = sync.Pool{New: func() any { return new([]uint32) }}

// hamDP is the exact subset DP for a Hamiltonian cycle over set (3 to hamDPMax
// GPUs): ends[m] is the set of vertices at which a path from the lowest vertex
// through exactly {lowest} + m can end.
func hamDP(set GPUSet, adj []GPUSet) bool {
	verts := set.Indexes()
	k := len(verts)
	var ladj [MaxGPUs]uint32
	for a, va := range verts {
		for b, vb := range verts {
			if adj[va].Has(vb) {
				ladj[a] |= 1 << uint(b)
			}
		}
	}
	// Local vertex 0 is the start; masks range over vertices 1..k-1.
	size := 1 << uint(k)
	p := dpPool.Get().(*[]uint32)
	defer dpPool.Put(p)
	if cap(*p) < size {
		*p = make([]uint32, size)
	}
	ends := (*p)[:size]
	ends[1] = 1
	for m := uint32(3); m < uint32(size); m += 2 { // masks holding vertex 0
		var e uint32
		for t := m &^ 1; t != 0; t &= t - 1 {
			u := bits.TrailingZeros32(t)
			if ladj[u]&ends[m&^(1<<uint(u))] != 0 {
				e |= 1 << uint(u)
			}
		}
		ends[m] = e
	}
	return ends[size-1]&ladj[0] != 0
}
