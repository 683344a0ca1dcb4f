package topology

// BestSetWithout is BestSet(free &^ gone, size): the same answer, found
// faster when one free mask is asked about again and again with a few of
// its GPUs gone (a node's fragmentation after each candidate choice: the
// GPUs a choice would take). The search of free is traced once per (free,
// size): what every connected group at every bandwidth level it tried
// offered. The search of free &^ gone then runs level by level as BestSet's
// does, but a group that lies in a traced group of free takes that group's
// answer instead of being searched again, wherever the answer is provably
// the same:
//   - a group searched exactly (or too small, bipartite with unequal
//     halves, or exactly the size): its best ring, when that ring holds no
//     gone GPU (the best ring of a group is the best of any part of it that
//     still holds it), or none when it had none;
//   - a group searched greedily: the set grown from each start GPU, when it
//     holds no GPU outside the new group (growing from that GPU in a
//     smaller pool adds the same GPUs in the same order); the other starts
//     are grown again.
//
// Every other group is searched as BestSet searches it. A pair is the
// fastest pair of free when that holds no gone GPU.
func (s *Shape) BestSetWithout(free, gone GPUSet, size int) (GPUSet, Quality, bool) {
	free &= s.All()
	gone &= free
	rest := free &^ gone
	switch {
	case gone == 0 || size <= 1 || size >= rest.Len() || s.n <= exactLimit:
		// Answered directly, or not at all (a size of 0 or less, as
		// BestSet: no set, never a search); a shape of up to exactLimit
		// GPUs is searched exactly and fast: a trace costs it more than
		// it saves.
		return s.BestSet(rest, size)
	case size == 2:
		// The fastest pair of free (smallest mask on ties) is the fastest
		// of any part of free that holds it.
		if set, q, ok := s.BestSet(free, size); ok && set&gone == 0 {
			return set, q, ok
		}
		return s.BestSet(rest, size)
	}
	key := memoKey{free: rest, size: size}
	if v, ok := s.memo.Load(key); ok {
		e := v.(memoEntry)
		return e.set, e.q, e.ok
	}
	set, q := s.searchWithin(s.traceOf(free, size), rest, size)
	s.remember(key, set, q)
	return set, q, true
}

// trace is what BestSet's search of one (free, size) found, level by level
// from the best, up to the level that answered.
type trace struct {
	levels [][]groupTrace
}

// groupTrace is one connected group of one level's 2-core.
type groupTrace struct {
	comp GPUSet
	kind groupKind
	// best is the group's best ring (groupWhole, groupExact; sum -1: none).
	best candidate
	// grown are the sets grown from each GPU of comp, lowest start first
	// (groupGreedy).
	grown []grownSet
}

// grownSet is the set greedy grows from one start GPU, whether it rings
// at the group's level, and its pairwise sum.
type grownSet struct {
	start int
	set   GPUSet
	ring  bool
	sum   float64
}

// maxTraces bounds a Shape's traces; a full table is cleared and refilled.
const maxTraces = 256

// traceOf returns the (memoized) trace of the search of (free, size), for
// 3 <= size < free.Len().
func (s *Shape) traceOf(free GPUSet, size int) *trace {
	key := memoKey{free: free, size: size}
	if v, ok := s.traces.Load(key); ok {
		return v.(*trace)
	}
	t := &trace{}
	for l := range s.levels {
		adj := s.adj[l]
		core := twoCore(free, adj)
		var groups []groupTrace
		c := candidate{sum: -1}
		if core.Len() >= size {
			for rest := core; rest != 0; {
				comp := component(rest, adj)
				rest &^= comp
				g := groupTrace{comp: comp, kind: classify(comp, size, adj), best: candidate{sum: -1}}
				if g.kind == groupGreedy {
					g.grown = s.growAll(comp, size, adj)
					for _, gs := range g.grown {
						if gs.ring {
							c.offer(gs.set, gs.sum)
						}
					}
				} else {
					s.solveGroup(comp, size, adj, &g.best)
					if g.best.sum >= 0 {
						c.offer(g.best.set, g.best.sum)
					}
				}
				groups = append(groups, g)
			}
		}
		t.levels = append(t.levels, groups)
		if c.sum >= 0 {
			break // the level that answers: the search stops here
		}
	}
	if s.traceLen.Add(1) > maxTraces {
		s.traces.Clear()
		s.traceLen.Store(0)
	}
	s.traces.Store(key, t)
	return t
}

// growAll is greedy's sets of group comp (more than exactLimit GPUs) at
// level adj, one per start GPU, with whether each rings (every set of a
// group whose every pair is linked does).
func (s *Shape) growAll(comp GPUSet, k int, adj []GPUSet) []grownSet {
	whole := complete(comp, adj)
	out := make([]grownSet, 0, comp.Len())
	seen := make(map[GPUSet]int, comp.Len())
	for t := uint64(comp); t != 0; t &= t - 1 {
		v := LowBit(t)
		set := s.grow(comp, GPUSet(1)<<uint(v), k)
		if i, ok := seen[set]; ok { // starts often grow the same set
			gs := out[i]
			gs.start = v
			out = append(out, gs)
			continue
		}
		seen[set] = len(out)
		out = append(out, grownSet{start: v, set: set, ring: whole || hamiltonian(set, adj), sum: s.sum(set)})
	}
	return out
}

// searchWithin is search(rest, size) for rest within the free mask t
// traces (3 <= size < rest.Len()), reusing the traced groups' answers.
func (s *Shape) searchWithin(t *trace, rest GPUSet, size int) (GPUSet, Quality) {
	for l := range s.levels {
		adj := s.adj[l]
		core := twoCore(rest, adj)
		if core.Len() < size {
			continue
		}
		var traced []groupTrace
		if l < len(t.levels) {
			traced = t.levels[l]
		}
		c := candidate{sum: -1}
		approx := false
		for r := core; r != 0; {
			comp := component(r, adj)
			r &^= comp
			g := groupOf(traced, comp)
			kind := classify(comp, size, adj)
			switch {
			case kind == groupNone:
			case g == nil:
				s.solveGroup(comp, size, adj, &c)
			case kind == groupGreedy && g.kind == groupGreedy:
				s.regrow(g, comp, size, adj, &c)
			case kind != groupGreedy && g.kind != groupGreedy && (g.best.sum < 0 || g.best.set&^comp == 0):
				if g.best.sum >= 0 {
					c.offer(g.best.set, g.best.sum)
				}
			default:
				s.solveGroup(comp, size, adj, &c)
			}
			if kind == groupGreedy {
				approx = true
			}
		}
		if set, q, ok := s.levelAnswer(l, &c, approx); ok {
			return set, q
		}
	}
	// Unreachable: at the last level every pair is linked.
	return s.greedyAny(rest, size)
}

// groupOf is the traced group that holds comp (nil: none traced).
func groupOf(traced []groupTrace, comp GPUSet) *groupTrace {
	low := comp & -comp
	for i := range traced {
		if traced[i].comp&low != 0 {
			return &traced[i]
		}
	}
	return nil
}

// regrow is greedy(comp) for comp within the traced greedy group g: the
// traced set of every start of comp that lies within comp, the others
// grown again in comp.
func (s *Shape) regrow(g *groupTrace, comp GPUSet, k int, adj []GPUSet, c *candidate) {
	whole := complete(comp, adj)
	for _, gs := range g.grown {
		if !comp.Has(gs.start) {
			continue
		}
		if gs.set&^comp == 0 {
			if gs.ring {
				c.offer(gs.set, gs.sum)
			}
			continue
		}
		set := s.grow(comp, GPUSet(1)<<uint(gs.start), k)
		if whole || hamiltonian(set, adj) {
			c.offer(set, s.sum(set))
		}
	}
}
