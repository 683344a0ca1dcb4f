package score

import (
	"cmp"
	"slices"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/topology"
)

// Time-shared replicas: the request takes Count replicas, on one GPU
// (Packed) or on Count distinct GPUs (Spread). A Choice counts replicas
// per GPU (Shares); ReplicaIDs names them.

func (s *State) chooseShared(req Request, d *Distribution, taken []Share) (Choice, bool) {
	w := s.Clone()
	r := req.Count
	for _, sh := range taken {
		if sh.GPU < 0 || sh.GPU >= len(w.reps) || w.freeReplicas(sh.GPU) < sh.Replicas {
			return Choice{}, false
		}
		w.repUsed[sh.GPU] += sh.Replicas
		w.busy |= topology.SetOf(sh.GPU)
		r -= sh.Replicas
	}
	if r < 0 {
		return Choice{}, false
	}
	elig := s.modelMask(req.Model)
	before := Fragmentation(s, d)
	shares := append([]Share(nil), taken...)
	if r > 0 {
		var add []Share
		if req.Policy == Spread {
			add = w.spread(elig, r, d, shares)
		} else {
			add = w.packed(elig, r, d, shares)
		}
		if add == nil {
			return Choice{}, false
		}
		for _, sh := range add {
			w.repUsed[sh.GPU] += sh.Replicas
			w.busy |= topology.SetOf(sh.GPU)
		}
		shares = mergeShares(append(shares, add...))
	}
	c := Choice{Kind: KindShared, Shares: shares, FragDelta: Fragmentation(w, d) - before}
	for _, sh := range shares {
		c.GPUs |= topology.SetOf(sh.GPU)
	}
	c.Quality = s.shape.Quality(c.GPUs)
	c.Ideal = s.shape.Ideal(c.GPUs.Len())
	return c, true
}

// packed puts r replicas on one GPU: the one whose fragmentation rises
// least, then the fullest (best fit), then the lowest index. A GPU the
// request already has replicas on is preferred.
func (s *State) packed(elig topology.GPUSet, r int, d *Distribution, taken []Share) []Share {
	for _, sh := range taken {
		if s.freeReplicas(sh.GPU) >= r {
			return []Share{{sh.GPU, r}}
		}
	}
	best, bestF, bestFree := -1, 0.0, 0
	for _, i := range elig.Indexes() {
		free := s.freeReplicas(i)
		if free < r {
			continue
		}
		f := s.fragAfterShare(i, r, d)
		if best < 0 || f < bestF-eps || (f <= bestF+eps && free < bestFree) {
			best, bestF, bestFree = i, f, free
		}
	}
	if best < 0 {
		return nil
	}
	return []Share{{best, r}}
}

// spread puts one replica on each of r distinct GPUs (not ones the request
// already uses), ranked as in packed.
func (s *State) spread(elig topology.GPUSet, r int, d *Distribution, taken []Share) []Share {
	type cand struct {
		i, free int
		f       float64
	}
	var cs []cand
	for _, i := range elig.Indexes() {
		if s.freeReplicas(i) < 1 || slices.ContainsFunc(taken, func(sh Share) bool { return sh.GPU == i }) {
			continue
		}
		cs = append(cs, cand{i, s.freeReplicas(i), s.fragAfterShare(i, 1, d)})
	}
	if len(cs) < r {
		return nil
	}
	slices.SortStableFunc(cs, func(a, b cand) int {
		if a.f < b.f-eps || a.f > b.f+eps {
			return cmp.Compare(a.f, b.f)
		}
		return cmp.Compare(a.free, b.free)
	})
	out := make([]Share, r)
	for n := range out {
		out[n] = Share{cs[n].i, 1}
	}
	slices.SortFunc(out, func(a, b Share) int { return a.GPU - b.GPU })
	return out
}

func (s *State) fragAfterShare(i, r int, d *Distribution) float64 {
	old, oldBusy := s.repUsed[i], s.busy
	s.repUsed[i] += r
	s.busy |= topology.SetOf(i)
	f := Fragmentation(s, d)
	s.repUsed[i], s.busy = old, oldBusy
	return f
}

func mergeShares(in []Share) []Share {
	slices.SortFunc(in, func(a, b Share) int { return a.GPU - b.GPU })
	var out []Share
	for _, sh := range in {
		if n := len(out); n > 0 && out[n-1].GPU == sh.GPU {
			out[n-1].Replicas += sh.Replicas
			continue
		}
		out = append(out, sh)
	}
	return out
}

// ReplicaIDs names the replicas of shares: on each share's GPU, the lowest
// replica numbers whose IDs are not in taken, in the order of shares. It is
// the one place that turns a shared Choice (replica counts per GPU) into
// device IDs.
func ReplicaIDs(node *topology.Node, shares []Share, taken map[string]bool) []string {
	var ids []string
	for _, sh := range shares {
		g := node.GPUs[sh.GPU]
		for n, k := 0, 0; k < max(1, g.Replicas) && n < sh.Replicas; k++ {
			if id := deviceid.ReplicaID(g.UUID, k); !taken[id] {
				ids = append(ids, id)
				n++
			}
		}
	}
	return ids
}
