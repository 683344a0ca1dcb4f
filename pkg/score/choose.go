package score

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/topology"
)

// eps absorbs float noise when comparing fragmentation and quality.
const eps = 1e-9

// maxEnumerate bounds the whole-GPU candidate sets tried exhaustively; above
// it (C(16,k) for mid k) a heuristic candidate list is used.
const maxEnumerate = 128

// Choose is THE device-choice function, used by the scheduler (Filter,
// Score, Reserve), the device plugin (when no scheduler choice exists) and
// the simulator. used holds the device IDs in use on the node (a whole GPU
// is busy when any of its replicas or MIG devices is used, and the other way
// round). w == nil means the default workload. It returns false when the
// request does not fit (or is invalid).
//
// Among the feasible device sets it takes the one that increases the node's
// Fragmentation least, then the one with the best link quality (unless the
// hint is HintNone), then the one with the least bandwidth to the GPUs left
// free (for one GPU: the worst-linked card, which keeps well-linked pairs
// free), then the lowest indexes.
func Choose(node *topology.Node, used map[string]bool, req Request, w *Workload) (Choice, bool) {
	if node == nil || req.Validate() != nil {
		return Choice{}, false
	}
	s, _ := StateOf(node, used)
	c, ok := ChooseState(s, req, w.Distribution())
	if !ok {
		return Choice{}, false
	}
	if req.Kind == KindShared {
		c.DeviceIDs = ReplicaIDs(node, c.Shares, used)
		slices.Sort(c.DeviceIDs)
	}
	return c, true
}

// ChooseState is Choose over a State. It does not modify s.
//
// Answers are memoized per (node layout, usage, request, workload snapshot):
// nodes of one layout with the same usage share one computation.
func ChooseState(s *State, req Request, d *Distribution) (Choice, bool) {
	if s == nil || req.Validate() != nil {
		return Choice{}, false
	}
	if d == nil {
		d = defaultDistribution
	}
	return s.chooseMemo(req, d, true)
}

// Evaluate is ChooseState without naming the devices: the Choice is the
// same but DeviceIDs stay empty. It is what scoring a node needs, and
// allocates nothing when the memo answers.
func Evaluate(s *State, req Request, d *Distribution) (Choice, bool) {
	if s == nil || req.Validate() != nil {
		return Choice{}, false
	}
	if d == nil {
		d = defaultDistribution
	}
	c, ok := s.chooseMemo(req, d, false)
	if ok {
		c.DeviceIDs = nil
	}
	return c, ok
}

// must holds devices a choice has to include (GetPreferredAllocation's
// mustInclude).
type must struct {
	gpus   topology.GPUSet // whole GPUs
	shares []Share         // replicas already taken by the request
	mig    []int           // MIG devices
}

func chooseMust(s *State, req Request, d *Distribution, m must) (Choice, bool) {
	if s == nil || req.Validate() != nil {
		return Choice{}, false
	}
	if d == nil {
		d = defaultDistribution
	}
	// The pod's CPU and memory leave the node whatever the devices: the
	// devices are chosen on the node as it will be, and FragDelta adds the
	// change the CPU and memory alone make.
	w := s
	if s.takesFit(req.CPUMilli, req.MemoryMiB, d) {
		w = s.takeResources(req.CPUMilli, req.MemoryMiB)
	}
	var c Choice
	ok := false
	switch req.Kind {
	case KindWhole:
		c, ok = w.chooseWhole(req, d, m.gpus)
	case KindShared:
		c, ok = w.chooseShared(req, d, m.shares)
	case KindMIG:
		c, ok = w.chooseMIG(req, m.mig)
	}
	if ok && w != s {
		c.FragDelta += Fragmentation(w, d) - Fragmentation(s, d)
	}
	return c, ok
}

// better reports whether a beats b: less fragmentation increase, then
// better quality (when it counts), then less boundary bandwidth.
func better(a, b Choice, useQuality bool) bool {
	if d := a.FragDelta - b.FragDelta; d < -eps || d > eps {
		return d < 0
	}
	if useQuality {
		if d := a.Quality.RingGBps - b.Quality.RingGBps; d > eps || d < -eps {
			return d > 0
		}
		if d := a.Quality.SumGBps - b.Quality.SumGBps; d > eps || d < -eps {
			return d > 0
		}
	}
	if d := a.Boundary - b.Boundary; d < -eps || d > eps {
		return d < 0
	}
	return a.GPUs < b.GPUs
}

func (s *State) chooseWhole(req Request, d *Distribution, mustGPUs topology.GPUSet) (Choice, bool) {
	k := req.Count
	free := s.FreeGPUs()
	elig := free & s.modelMask(req.Model)
	if mustGPUs&^elig != 0 || elig.Len() < k || mustGPUs.Len() > k {
		return Choice{}, false
	}
	fe := s.newFragEval(d)
	before := fe.at(0)
	ideal := s.shape.Ideal(k)
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

// chooseMIG takes free healthy MIG devices of the profile, packing them onto
// the GPUs whose MIG slices are most used (so whole GPUs stay free for a
// different layout), then lower GPU index, then lower placement start.
func (s *State) chooseMIG(req Request, mustMIG []int) (Choice, bool) {
	elig := s.modelMaskAll(req.Model)
	usedSlices := make([]int, len(s.node.GPUs))
	for j, m := range s.node.MIG {
		if s.migUsed[j] && m.Parent >= 0 && m.Parent < len(usedSlices) {
			usedSlices[m.Parent] += max(1, m.Size)
		}
	}
	ok := func(j int) bool {
		m := s.node.MIG[j]
		return m.Profile == req.MIGProfile && s.healthyMIG[j] && !s.migUsed[j] && elig.Has(m.Parent)
	}
	var picked []int
	for _, j := range mustMIG {
		if j < 0 || j >= len(s.node.MIG) || !ok(j) || slices.Contains(picked, j) {
			return Choice{}, false
		}
		picked = append(picked, j)
	}
	var cands []int
	for j := range s.node.MIG {
		if ok(j) && !slices.Contains(picked, j) {
			cands = append(cands, j)
		}
	}
	slices.SortStableFunc(cands, func(a, b int) int {
		ma, mb := s.node.MIG[a], s.node.MIG[b]
		if c := cmp.Compare(usedSlices[mb.Parent], usedSlices[ma.Parent]); c != 0 {
			return c
		}
		if c := cmp.Compare(ma.Parent, mb.Parent); c != 0 {
			return c
		}
		return cmp.Compare(ma.Start, mb.Start)
	})
	need := req.Count - len(picked)
	if need < 0 || len(cands) < need {
		return Choice{}, false
	}
	picked = append(picked, cands[:need]...)
	slices.Sort(picked)
	c := Choice{Kind: KindMIG, MIG: picked}
	for _, j := range picked {
		c.GPUs |= topology.SetOf(s.node.MIG[j].Parent)
		c.DeviceIDs = append(c.DeviceIDs, s.node.MIG[j].UUID)
	}
	slices.Sort(c.DeviceIDs)
	c.Quality = s.shape.Quality(c.GPUs)
	c.Ideal = s.shape.Ideal(c.GPUs.Len())
	return c, true
}

// modelMaskAll is modelMask over every GPU index (MIG parents are not
// "usable" as whole GPUs).
func (s *State) modelMaskAll(model string) topology.GPUSet {
	var m topology.GPUSet
	for i, g := range s.node.GPUs {
		if model == "" || modelIn(g.Model, model) {
			m |= topology.SetOf(i)
		}
	}
	return m
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

// String renders a choice for logs.
func (c Choice) String() string {
	if c.GPUs.Len() <= 1 {
		return fmt.Sprintf("%s %v fragDelta=%+.3f", c.Kind, c.DeviceIDs, c.FragDelta)
	}
	return fmt.Sprintf("%s %v quality=%.1f/%.1fGB/s fragDelta=%+.3f", c.Kind, c.DeviceIDs, c.Quality.RingGBps, c.Ideal.RingGBps, c.FragDelta)
}
