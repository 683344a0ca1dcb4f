package score

import (
	"cmp"
	"math/bits"
	"slices"

	"github.com/gpupack/gpupack/pkg/topology"
)

// Whole GPUs: the request takes Count entirely free GPUs. Every candidate
// set is scored by the fragmentation it adds, its ring bandwidth and its
// bandwidth to the GPUs left free (better, choose.go).

// maxEnumerate bounds the whole-GPU candidate sets tried exhaustively; above
// it (C(16,k) for mid k) a heuristic candidate list is used.
const maxEnumerate = 128

func (s *State) chooseWhole(req Request, d *Distribution, mustGPUs topology.GPUSet) (Choice, bool) {
	k := req.Count
	free := s.FreeGPUs()
	elig := free & s.modelMask(req.Model)
	if req.NoShared {
		elig &^= s.sharedGPUs()
	}
	if mustGPUs&^elig != 0 || elig.Len() < k || mustGPUs.Len() > k {
		return Choice{}, false
	}
	fe := s.newFragEval(d)
	before := fe.at(0)
	ideal := s.ideal(req.Model, k)
	useQuality := k >= 2 && req.Topology != HintNone
	var best Choice
	found := false
	for _, set := range wholeCandidates(s.shape, elig, k, mustGPUs) {
		q := s.shape.Quality(set)
		if k >= 2 && req.Topology == HintRequired && ratio(q.RingGBps, ideal.RingGBps) < 1-eps {
			continue
		}
		c := Choice{
			Kind:      KindWhole,
			GPUs:      set,
			Quality:   q,
			Ideal:     ideal,
			FragDelta: fe.at(set) - before,
			Boundary:  boundary(s.shape, set, free&^set),
		}
		if !found || better(c, best, useQuality) {
			best, found = c, true
		}
	}
	if !found {
		return Choice{}, false
	}
	best.DeviceIDs = s.gpuIDs(best.GPUs)
	return best, true
}

// sharedGPUs are the time-shared GPUs (more than one replica).
func (s *State) sharedGPUs() topology.GPUSet {
	var set topology.GPUSet
	for i, r := range s.reps {
		if r > 1 && i < topology.MaxGPUs {
			set |= topology.SetOf(i)
		}
	}
	return set
}

// boundary is the bandwidth from set to rest.
func boundary(shape *topology.Shape, set, rest topology.GPUSet) float64 {
	var b float64
	for i := range set.All() {
		for j := range rest.All() {
			b += shape.Bandwidth(i, j)
		}
	}
	return b
}

// wholeCandidates lists the size-k subsets of elig that contain must: all
// of them when there are at most maxEnumerate, else the shape's best set,
// one greedy best-linked set grown from every GPU, and the k worst-linked
// GPUs.
func wholeCandidates(shape *topology.Shape, elig topology.GPUSet, k int, must topology.GPUSet) []topology.GPUSet {
	rest := elig &^ must
	need := k - must.Len()
	idx := rest.Indexes()
	if binomial(len(idx), need) <= maxEnumerate {
		var out []topology.GPUSet
		if need == 0 {
			return []topology.GPUSet{must}
		}
		// Gosper's hack over positions in idx. len(idx) may be 64, so no
		// 1<<len(idx) bound (it is 0 in uint64): stop when the next
		// combination would need a position past the last one, or when
		// c+lo carries out of bit 63.
		for c := uint64(1)<<need - 1; ; {
			var set topology.GPUSet
			for p := range topology.GPUSet(c).All() {
				set |= topology.SetOf(idx[p])
			}
			out = append(out, set|must)
			lo := c & -c
			r := c + lo
			if r == 0 || bits.Len64(r) > len(idx) {
				return out
			}
			c = (((r ^ c) >> 2) / lo) | r
		}
	}
	var out []topology.GPUSet
	if must == 0 {
		if set, _, ok := shape.BestSet(elig, k); ok {
			out = append(out, set)
		}
	}
	seeds := idx
	if must != 0 {
		seeds = []int{-1}
	}
	for _, seed := range seeds {
		set := must
		if seed >= 0 {
			set |= topology.SetOf(seed)
		}
		for set.Len() < k {
			bestJ, bestBW := -1, -1.0
			for j := range (elig &^ set).All() {
				var bw float64
				for i := range set.All() {
					bw += shape.Bandwidth(i, j)
				}
				if bw > bestBW {
					bestJ, bestBW = j, bw
				}
			}
			set |= topology.SetOf(bestJ)
		}
		out = append(out, set)
	}
	// The worst-linked GPUs: fewest bandwidth to the other eligible ones.
	type gb struct {
		i  int
		bw float64
	}
	gs := make([]gb, 0, len(idx))
	for _, i := range idx {
		var bw float64
		for j := range elig.All() {
			if j != i {
				bw += shape.Bandwidth(i, j)
			}
		}
		gs = append(gs, gb{i, bw})
	}
	slices.SortStableFunc(gs, func(a, b gb) int { return cmp.Compare(a.bw, b.bw) })
	set := must
	for _, g := range gs[:need] {
		set |= topology.SetOf(g.i)
	}
	return append(out, set)
}

func binomial(n, k int) int {
	if k < 0 || k > n {
		return 0
	}
	r := 1
	for i := 1; i <= k; i++ {
		r = r * (n - k + i) / i
		if r > 1<<30 {
			return r
		}
	}
	return r
}
