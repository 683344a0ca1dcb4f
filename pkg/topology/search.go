package topology

import (
	"math/bits"
	"slices"
	"sync"
)

// exactLimit is the largest connected candidate group the best-set search
// solves exactly (a subset DP over at most 2^16 masks). Nodes of up to 16 GPUs
// are therefore always solved exactly.
const exactLimit = 16

// BestSet returns the best set of size GPUs among free: the set with the best
// Quality (the fastest ring bottleneck, then the largest pairwise sum); among
// equally good sets, the one with the smallest bitmask (the one whose highest
// differing GPU index is lower: {0,2,3} before {0,1,5}), so results are
// reproducible. GPUs outside the shape are ignored. ok is false when size <= 0
// or free holds fewer than size GPUs. The result never holds a GPU outside
// free.
//
// How: the ring bottleneck is one of the shape's few distinct bandwidths
// (levels). For each level, best first, the search keeps the links at least
// that fast, drops GPUs with fewer than two such links (repeatedly), splits
// the rest into connected groups, skips groups too small or bipartite with
// unequal sides, and asks each group for its best size-subset that has a
// Hamiltonian cycle: a branch and bound on the pairwise sum with a step
// budget, then, if the budget runs out, an exhaustive subset DP (at most 2^16
// masks). The first level where some group answers gives the ring; the best
// pairwise sum over the groups wins. Sets of 1, 2 and all free GPUs are
// answered directly.
//
// The search is exact for every node of up to 16 GPUs, and on bigger nodes
// whenever, at each bandwidth level tried, the GPUs that could form a ring lie
// in connected groups of at most 16; otherwise a group is searched greedily
// (from every start GPU, add the GPU with the largest bandwidth to the set so
// far, keep the best set that forms a ring), which gives a good, not always
// optimal, set whose reported Quality is computed for it. Results are
// memoized per (free, size) in the Shape, so nodes of one shape share them.
func (s *Shape) BestSet(free GPUSet, size int) (GPUSet, Quality, bool) {
	free &= s.All()
	if size <= 0 || free.Len() < size {
		return 0, Quality{}, false
	}
	key := memoKey{free: free, size: size}
	if v, ok := s.memo.Load(key); ok {
		e := v.(memoEntry)
		return e.set, e.q, e.ok
	}
	set, q := s.search(free, size)
	s.remember(key, set, q)
	return set, q, true
}

// remember memoizes BestSet's answer for key.
func (s *Shape) remember(key memoKey, set GPUSet, q Quality) {
	if s.memoLen.Add(1) > maxMemo {
		s.memo.Clear()
		s.memoLen.Store(0)
	}
	s.memo.Store(key, memoEntry{set: set, q: q, ok: true})
}

// Ideal returns the best quality a set of size GPUs can have on this shape,
// with every GPU free (the zero Quality when size is out of range).
func (s *Shape) Ideal(size int) Quality {
	_, q, _ := s.BestSet(s.All(), size)
	return q
}

// search is BestSet without the memo; 1 <= size <= free.Len().
func (s *Shape) search(free GPUSet, size int) (GPUSet, Quality) {
	switch {
	case size == 1:
		return free & -free, Quality{RingGBps: PerfectGBps}
	case size == free.Len():
		return free, s.Quality(free)
	case size == 2:
		return s.bestPair(free)
	}
	for l := range s.levels {
		adj := s.adj[l]
		core := twoCore(free, adj)
		if core.Len() < size {
			continue
		}
		c := candidate{sum: -1}
		approx := false
		for rest := core; rest != 0; {
			comp := component(rest, adj)
			rest &^= comp
			if s.solveGroup(comp, size, adj, &c) == groupGreedy {
				approx = true
			}
		}
		if set, q, ok := s.levelAnswer(l, &c, approx); ok {
			return set, q
		}
	}
	// Unreachable: at the last level every pair is linked.
	return s.greedyAny(free, size)
}

// groupKind is how the search treats one connected group at one level.
type groupKind uint8

const (
	// groupNone: no ring of the size can lie in the group (bipartite with
	// unequal halves, or too small).
	groupNone groupKind = iota
	// groupWhole: the group is exactly the size (a ring or none).
	groupWhole
	// groupExact: searched exactly (branch and bound, else subset DP).
	groupExact
	// groupGreedy: bigger than exactLimit, searched greedily.
	groupGreedy
)

// classify is how the search treats group comp of the level adj for size.
func classify(comp GPUSet, size int, adj []GPUSet) groupKind {
	if a, b, ok := bipartition(comp, adj); ok && (size%2 == 1 || min(a.Len(), b.Len()) < size/2) {
		// A ring alternates sides of a bipartite group: size must be
		// even, with size/2 GPUs from each side.
		return groupNone
	}
	switch n := comp.Len(); {
	case n < size:
		return groupNone
	case n == size:
		return groupWhole
	case n > exactLimit:
		return groupGreedy
	}
	return groupExact
}

// solveGroup offers c the best size-ring of connected group comp at the
// level adj, and says how it searched.
func (s *Shape) solveGroup(comp GPUSet, size int, adj []GPUSet, c *candidate) groupKind {
	kind := classify(comp, size, adj)
	switch kind {
	case groupWhole:
		if hamiltonian(comp, adj) {
			c.offer(comp, s.sum(comp))
		}
	case groupGreedy:
		if complete(comp, adj) {
			s.greedy(comp, size, nil, c)
		} else {
			s.greedy(comp, size, adj, c)
		}
	case groupExact:
		if !s.bnbSearch(comp, size, adj, bnbBudget, c) {
			s.dpSearch(comp, size, adj, c)
		}
	}
	return kind
}

// levelAnswer is the search's answer at level l from the level's best
// candidate c (approx: a group was searched greedily); false when c holds
// none.
func (s *Shape) levelAnswer(l int, c *candidate, approx bool) (GPUSet, Quality, bool) {
	if c.sum < 0 {
		return 0, Quality{}, false
	}
	q := Quality{RingGBps: s.levels[l], SumGBps: c.sum}
	if approx {
		// A greedy pick may ring faster than the level it was found at.
		q.RingGBps = max(q.RingGBps, s.ring(c.set))
	}
	return c.set, q, true
}

// candidate is the best set found so far at one bandwidth level.
type candidate struct {
	set GPUSet
	sum float64 // -1: none yet
}

// offer keeps set when it beats the candidate: a larger sum, or an equal sum
// and a smaller mask.
func (c *candidate) offer(set GPUSet, sum float64) {
	if sum > c.sum || (sum == c.sum && set < c.set) {
		c.set, c.sum = set, sum
	}
}

// bestPair returns the free pair with the fastest link (smallest mask on ties).
func (s *Shape) bestPair(free GPUSet) (GPUSet, Quality) {
	var best GPUSet
	bestBW := -1.0
	for t := uint64(free); t != 0; t &= t - 1 {
		i := LowBit(t)
		row := s.bw[i*s.n:]
		for u := t & (t - 1); u != 0; u &= u - 1 {
			j := LowBit(u)
			set := GPUSet(1)<<uint(i) | GPUSet(1)<<uint(j)
			if b := row[j]; b > bestBW || (b == bestBW && set < best) {
				best, bestBW = set, b
			}
		}
	}
	return best, Quality{RingGBps: bestBW, SumGBps: bestBW}
}

// twoCore returns the GPUs of set left after repeatedly dropping those with
// fewer than two neighbours in the set: only they can be on a ring.
func twoCore(set GPUSet, adj []GPUSet) GPUSet {
	for {
		next := set
		for t := uint64(set); t != 0; t &= t - 1 {
			i := LowBit(t)
			if (adj[i] & set).Len() < 2 {
				next &^= 1 << uint(i)
			}
		}
		if next == set {
			return set
		}
		set = next
	}
}

// component returns the connected component of set's lowest GPU.
func component(set GPUSet, adj []GPUSet) GPUSet {
	seen := set & -set
	frontier := seen
	for frontier != 0 {
		next := neighbours(frontier, adj) & set &^ seen
		seen |= next
		frontier = next
	}
	return seen
}

// neighbours is every GPU linked in adj to a GPU of set.
func neighbours(set GPUSet, adj []GPUSet) GPUSet {
	var n GPUSet
	for t := uint64(set); t != 0; t &= t - 1 {
		n |= adj[LowBit(t)]
	}
	return n
}

// complete reports whether every pair of set is linked in adj.
func complete(set GPUSet, adj []GPUSet) bool {
	for t := uint64(set); t != 0; t &= t - 1 {
		i := LowBit(t)
		if adj[i]&set != set&^(1<<uint(i)) {
			return false
		}
	}
	return true
}

// local is a group of at most exactLimit GPUs renumbered 0..n-1 in index
// order, with the bandwidth matrix and one level's adjacency in local terms.
type local struct {
	verts []int
	bw    [exactLimit][exactLimit]float64
	adj   [exactLimit]uint32
}

func (s *Shape) newLocal(set GPUSet, adj []GPUSet) *local {
	g := &local{verts: set.Indexes()}
	for a, va := range g.verts {
		row := s.bw[va*s.n:]
		for b, vb := range g.verts {
			g.bw[a][b] = row[vb]
			if adj != nil && adj[va].Has(vb) {
				g.adj[a] |= 1 << uint(b)
			}
		}
	}
	return g
}

// global maps a local mask back to GPU indexes.
func (g *local) global(m uint32) GPUSet {
	var set GPUSet
	for t := m; t != 0; t &= t - 1 {
		set |= GPUSet(1) << uint(g.verts[bits.TrailingZeros32(t)])
	}
	return set
}

// sum is the pairwise sum of a local mask.
func (g *local) sum(m uint32) float64 {
	var total float64
	for t := m; t != 0; t &= t - 1 {
		row := &g.bw[bits.TrailingZeros32(t)]
		for u := t & (t - 1); u != 0; u &= u - 1 {
			total += row[bits.TrailingZeros32(u)]
		}
	}
	return total
}

// sumBound is the sum of the k(k-1)/2 fastest pairs of the group: no k-subset
// can have a larger pairwise sum.
func (g *local) sumBound(k int) float64 {
	n := len(g.verts)
	var buf [exactLimit * (exactLimit - 1) / 2]float64
	pairs := buf[:0]
	for a := range n {
		for b := a + 1; b < n; b++ {
			pairs = append(pairs, g.bw[a][b])
		}
	}
	slices.Sort(pairs)
	var total float64
	for _, v := range pairs[len(pairs)-k*(k-1)/2:] {
		total += v
	}
	return total
}

// dpSearch offers c the best k-subset of comp (at most exactLimit GPUs) that
// has a Hamiltonian cycle in adj. Subsets are built by size, each from its
// subsets one GPU smaller (ends[m] = where a path from m's lowest GPU through
// exactly m can end), and masks of one size are visited in increasing order,
// so the first of equally good sets is the smallest mask and the search stops
// as soon as a set reaches the pairwise-sum bound.
func (s *Shape) dpSearch(comp GPUSet, k int, adj []GPUSet, c *candidate) {
	g := s.newLocal(comp, adj)
	n := len(g.verts)
	bound := g.sumBound(k)
	if complete(comp, adj) {
		g.maxSumAll(k, bound, c)
		return
	}
	p := dpPool16.Get().(*[]uint16)
	defer dpPool16.Put(p)
	ends := (*p)[:1<<uint(n)]
	var ladj [exactLimit]uint16
	forward := 2*masksUpTo(n, k) > 1<<uint(n)
	if forward {
		clear(ends[:1<<uint(n)])
	}
	for i := range n {
		ends[1<<uint(i)] = 1 << uint(i)
		ladj[i] = uint16(g.adj[i])
	}
	var sums *pairSums
	limit := uint32(1) << uint(n)
	if forward {
		// Most masks matter: push paths forward over all masks in
		// increasing order, skipping those no path covers.
		for m := uint32(1); m < limit; m++ {
			e := uint32(ends[m])
			if e == 0 {
				continue
			}
			low := m & -m
			if bits.OnesCount32(m) < k {
				var next uint32
				for t := e; t != 0; t &= t - 1 {
					next |= uint32(ladj[bits.TrailingZeros32(t)&(exactLimit-1)])
				}
				// Extend to GPUs above the start, not yet on the path.
				for t := next &^ m &^ (low<<1 - 1); t != 0; t &= t - 1 {
					v := t & -t
					ends[(m|v)&0xffff] |= uint16(v)
				}
				continue
			}
			if e&uint32(ladj[bits.TrailingZeros32(m)&(exactLimit-1)]) == 0 {
				continue
			}
			if sums == nil {
				sums = g.pairSums()
			}
			if c.offerLocal(g, sums, m, bound) {
				return
			}
		}
		return
	}
	// Few masks matter: pull each mask of 2..k GPUs from its subsets, size
	// by size (Gosper's hack), the masks of k GPUs in increasing order.
	for size := 2; size <= k; size++ {
		for m := uint32(1)<<uint(size) - 1; m < limit; m = nextCombination(m) {
			low := m & -m
			var e uint32
			for t := m &^ low; t != 0; t &= t - 1 {
				u := bits.TrailingZeros32(t) & (exactLimit - 1)
				x := uint32(ladj[u] & ends[(m&^(1<<uint(u)))&0xffff])
				e |= (x | -x) >> 31 << uint(u) // branch-free: bit u if x != 0
			}
			ends[m&0xffff] = uint16(e)
			if size != k || e&uint32(ladj[bits.TrailingZeros32(m)&(exactLimit-1)]) == 0 {
				continue
			}
			if sums == nil {
				sums = g.pairSums()
			}
			if c.offerLocal(g, sums, m, bound) {
				return
			}
		}
	}
}

// offerLocal offers the local mask m (a ring) to c, and reports whether c
// now holds m at the sum bound: no later (larger) mask can beat it.
func (c *candidate) offerLocal(g *local, sums *pairSums, m uint32, bound float64) bool {
	sum := sums.of(m)
	if sum < c.sum {
		return false
	}
	set := g.global(m)
	c.offer(set, sum)
	return c.sum == bound && c.set == set
}

// masksUpTo is the number of masks of n bits with 2 to k bits set.
func masksUpTo(n, k int) int {
	total, binom := 0, 1 // binom = C(n, p)
	for p := 1; p <= k; p++ {
		binom = binom * (n - p + 1) / p
		if p >= 2 {
			total += binom
		}
	}
	return total
}

// maxSumAll offers c the k-subset with the largest pairwise sum, trying every
// one in increasing mask order (for a group where every subset rings).
func (g *local) maxSumAll(k int, bound float64, c *candidate) {
	sums := g.pairSums()
	limit := uint32(1) << uint(len(g.verts))
	for m := uint32(1)<<uint(k) - 1; m < limit; m = nextCombination(m) {
		sum := sums.of(m)
		if sum < c.sum {
			continue
		}
		set := g.global(m)
		c.offer(set, sum)
		if c.sum == bound && c.set == set {
			return
		}
	}
}

var dpPool16 = sync.Pool{New: func() any {
	b := make([]uint16, 1<<exactLimit)
	return &b
}}

// pairSums gives the pairwise sum of a local mask in 2 lookups per GPU:
// lo[j][b] and hi[j][b] are the sums of j's links to the GPUs of byte b of the
// mask (GPUs 0-7 and 8-15).
type pairSums struct {
	lo, hi [exactLimit][256]float64
}

func (g *local) pairSums() *pairSums {
	ps := new(pairSums)
	for j := range g.verts {
		row := &g.bw[j]
		for b := 1; b < 256; b++ {
			low := bits.TrailingZeros8(uint8(b))
			ps.lo[j][b] = ps.lo[j][b&(b-1)] + row[low]
			if low+8 < exactLimit {
				ps.hi[j][b] = ps.hi[j][b&(b-1)] + row[low+8]
			}
		}
	}
	return ps
}

// of returns the pairwise sum of the local mask m (the diagonal is 0).
func (ps *pairSums) of(m uint32) float64 {
	var total float64
	lo, hi := m&0xff, (m>>8)&0xff
	for t := m; t != 0; t &= t - 1 {
		j := bits.TrailingZeros32(t) & (exactLimit - 1)
		total += ps.lo[j][lo] + ps.hi[j][hi]
	}
	return total / 2
}

// nextCombination returns the next larger mask with the same number of bits.
func nextCombination(m uint32) uint32 {
	t := m | (m - 1)
	return (t + 1) | (^t&-^t-1)>>uint(bits.TrailingZeros32(m)+1)
}

// bnbBudget is the number of branch-and-bound steps tried before the
// exhaustive subset DP takes over.
const bnbBudget = 1024

// bnbSearch offers c the best k-subset of comp (at most exactLimit GPUs) that
// has a Hamiltonian cycle in adj (any subset when every pair of comp is
// linked). It is a branch and bound on the pairwise sum over the GPUs from the
// highest index down, leaving a GPU out before taking it: subsets come in
// increasing mask order, and a branch whose bound cannot beat the best so far
// is cut (an equal one would be a larger mask). It reports false, having
// offered nothing, when it runs out of budget (steps plus ring-search steps).
func (s *Shape) bnbSearch(comp GPUSet, k int, adj []GPUSet, budget int, c *candidate) bool {
	b := bnbPool.Get().(*bnb)
	defer bnbPool.Put(b)
	*b = bnb{g: s.newLocal(comp, adj), k: k, best: -1, budget: budget, top: b.top}
	if !complete(comp, adj) {
		b.adj = adj
	}
	b.fillTop()
	var gains [exactLimit]float64
	b.walk(len(b.g.verts)-1, 0, 0, 0, &gains)
	if b.budget < 0 {
		return false
	}
	if b.bestSet != 0 {
		c.offer(b.g.global(b.bestSet), b.best)
	}
	return true
}

type bnb struct {
	g      *local
	adj    []GPUSet // nil when every subset rings
	k      int
	budget int
	// top[j][i][r] is the sum of the r fastest links from j to GPUs 0..i.
	top     [exactLimit][exactLimit][exactLimit]float64
	best    float64
	bestSet uint32
}

var bnbPool = sync.Pool{New: func() any { return new(bnb) }}

// fillTop fills top[j][i][r] for r < k, growing a sorted list of j's links
// one GPU at a time.
func (b *bnb) fillTop() {
	n := len(b.g.verts)
	var buf [exactLimit]float64
	for j := range n {
		row := &b.g.bw[j]
		links := buf[:0]
		for i := range n {
			if i != j {
				links = append(links, row[i])
				sortDesc(links) // one insertion
			}
			top := &b.top[j][i]
			var total float64
			for r := 1; r < b.k; r++ {
				if r <= len(links) {
					total += links[r-1]
				}
				top[r] = total
			}
		}
	}
}

// sortDesc sorts a short slice, largest first (insertion sort).
func sortDesc(a []float64) {
	for i := 1; i < len(a); i++ {
		v := a[i]
		j := i
		for ; j > 0 && a[j-1] < v; j-- {
			a[j] = a[j-1]
		}
		a[j] = v
	}
}

// walk decides local GPUs i, i-1, ..., 0; chosen holds n GPUs with pairwise
// sum sum; gains[j] is the sum of j's links to the chosen GPUs.
func (b *bnb) walk(i int, chosen uint32, n int, sum float64, gains *[exactLimit]float64) {
	if b.budget--; b.budget < 0 {
		return
	}
	if n == b.k {
		if sum <= b.best {
			return
		}
		ok := true
		if b.adj != nil {
			var decided bool
			ok, decided = hamCheck(b.g.global(chosen), b.adj, &b.budget)
			if !decided {
				b.budget = -1
				return
			}
		}
		if ok {
			b.best, b.bestSet = sum, chosen
		}
		return
	}
	r := b.k - n
	if i+1 < r {
		return
	}
	lower := uint32(1)<<uint(i+1) - 1
	if b.adj != nil && n > 0 {
		// Every chosen GPU needs two ring neighbours among those it may
		// still get.
		avail := chosen | lower
		for t := chosen; t != 0; t &= t - 1 {
			if bits.OnesCount32(b.g.adj[bits.TrailingZeros32(t)]&avail) < 2 {
				return
			}
		}
	}
	// Bound: a GPU j still to take adds its links to the chosen ones and
	// half its links to the other new ones, at most its r-1 fastest links
	// to GPUs 0..i.
	var buf [exactLimit]float64
	cand := buf[:i+1]
	for j := range cand {
		cand[j] = gains[j] + b.top[j][i][r-1]/2
	}
	sortDesc(cand)
	bound := sum
	for _, v := range cand[:r] {
		bound += v
	}
	if bound <= b.best {
		return
	}
	// Leave i out first (smaller masks first), then take it.
	b.walk(i-1, chosen, n, sum, gains)
	if b.budget < 0 {
		return
	}
	next := *gains
	row := &b.g.bw[i]
	for j := range i {
		next[j] += row[j]
	}
	b.walk(i-1, chosen|1<<uint(i), n+1, sum+gains[i], &next)
}

// greedy offers c the best of the sets grown from every GPU of comp: add,
// one at a time, the GPU with the largest bandwidth to the set so far
// (lowest index on ties); keep those that form a ring in adj (every set when
// adj is nil).
func (s *Shape) greedy(comp GPUSet, k int, adj []GPUSet, c *candidate) {
	tried := make(map[GPUSet]bool, comp.Len())
	for t := uint64(comp); t != 0; t &= t - 1 {
		set := s.grow(comp, GPUSet(1)<<uint(LowBit(t)), k)
		if tried[set] { // starts often grow the same set
			continue
		}
		tried[set] = true
		if adj == nil || hamiltonian(set, adj) {
			c.offer(set, s.sum(set))
		}
	}
}

// grow adds GPUs of pool to set until it holds k.
func (s *Shape) grow(pool, set GPUSet, k int) GPUSet {
	var gain [MaxGPUs]float64
	for t := uint64(set); t != 0; t &= t - 1 {
		i := LowBit(t)
		for u := uint64(pool); u != 0; u &= u - 1 {
			gain[LowBit(u)] += s.bw[i*s.n+LowBit(u)]
		}
	}
	for set.Len() < k {
		best, bestGain := -1, -1.0
		for u := uint64(pool &^ set); u != 0; u &= u - 1 {
			if j := LowBit(u); gain[j] > bestGain {
				best, bestGain = j, gain[j]
			}
		}
		set |= GPUSet(1) << uint(best)
		for u := uint64(pool); u != 0; u &= u - 1 {
			gain[LowBit(u)] += s.bw[best*s.n+LowBit(u)]
		}
	}
	return set
}

// greedyAny is the last resort: the best greedy set of free by quality.
func (s *Shape) greedyAny(free GPUSet, k int) (GPUSet, Quality) {
	var best GPUSet
	var bestQ Quality
	for t := uint64(free); t != 0; t &= t - 1 {
		set := s.grow(free, GPUSet(1)<<uint(LowBit(t)), k)
		if q := s.Quality(set); best == 0 || q.Better(bestQ) || (q.Equal(bestQ) && set < best) {
			best, bestQ = set, q
		}
	}
	return best, bestQ
}
