package gpupack

import (
	"context"
	"math"
	"slices"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/score"
)

// PreScore skips scoring for pods that ask for no GPU, CPU or memory, and
// takes the prices of the cluster's supply for a GPU pod's Score
// (gpucache's Pricing under the workload snapshot).
func (pl *GPUPack) PreScore(_ context.Context, cs fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		if _, ok := readCPUOnly(cs); ok {
			return nil
		}
		return fwk.NewStatus(fwk.Skip)
	}
	s.pricing = pl.cache.Pricing(pl.workload.Distribution())
	return nil
}

// MaxNodeScore must be pkg/score's (it imports nothing from Kubernetes).
var (
	_ [fwk.MaxNodeScore - score.MaxNodeScore]struct{}
	_ [score.MaxNodeScore - fwk.MaxNodeScore]struct{}
)

// Score returns the node's raw figure, pkg/score's Rank.Raw of the
// fragmentation change at its best device choice (from Filter's plan) plus
// what its devices take from the cluster's supply (rawOf): the gain in
// steps of score.DefaultResolution GPUs. NormalizeScore maps the feasible
// nodes' figures to 0..100.
//
// A node the pod no longer fits when Score looks it up (its usage or
// annotations changed since Filter admitted it: the cache follows the
// informers, not the cycle's snapshot) is ranked last, not an error, which
// would fail the pod's whole cycle although other nodes fit; Reserve
// decides on the cache as it is then.
func (pl *GPUPack) Score(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	nodeInfo = cycleNodeInfo(cs, nodeInfo)
	s, err := readState(cs)
	if err != nil {
		if c, ok := readCPUOnly(cs); ok {
			return pl.scoreCPUOnly(c, nodeInfo), nil
		}
		return 0, fwk.AsStatus(err)
	}
	name := nodeInfo.Node().Name
	if s.adjust[name] != nil { // Filter planned on the adjusted view
		if p, ok := s.plan(name); ok {
			var view gpucache.NodeView
			var err error
			if s.pricing.Priced() { // the view is read only to price the plan
				view, err = pl.cache.ViewNodeInfo(nodeInfo)
			}
			return pl.rawOf(s, p, view, err), nil
		}
	}
	// Filter's plan, from the node's last plan (planFor), or made now
	// when the node changed since or Filter did not run for it.
	p, view, err := pl.planView(nodeInfo, s)
	if err != nil {
		klog.FromContext(ctx).V(4).Info("Node changed since Filter and no longer fits the pod; ranked last", "pod", klog.KObj(pod), "node", klog.KObj(nodeInfo.Node()), "err", err)
		return rawLast, nil
	}
	if s.quality && s.requestID == 0 {
		s.setPlan(name, p) // NormalizeScore needs its ring and ideal
	}
	return pl.rawOf(s, p, view, nil), nil
}

// rawLast is the raw figure of a node the pod no longer fits (Score):
// score.Rank.Raw's floor, which NormalizeScore maps to 0 beside any node
// that fits.
const rawLast = math.MinInt32

// rawOf is the node's raw figure for plan p: pkg/score's Rank.Raw of its
// fragmentation change plus score.Pricing.Cost of the devices it takes
// (PreScore's prices), priced on the node's usage as the cache sees it
// (for a plan made on an adjusted view too: nominated pods are not
// counted in the supply either). gpusim ranks with the same functions.
//
// A plan read from the node's last plans carries no devices; when prices
// apply (a constrained type's hosts are scarce, rare) it is made again,
// from pkg/score's choice memo.
//
// view is the node's view as the cache sees it (ViewNodeInfo) and viewErr
// the error reading it: the plan is priced only on a view read without one.
func (pl *GPUPack) rawOf(s *cycleState, p plan, view gpucache.NodeView, viewErr error) int64 {
	delta := p.fragDelta
	if s.pricing.Priced() && viewErr == nil {
		delta += pl.supplyCost(s, view, p)
	}
	return pl.rank.Raw(delta)
}

// supplyCost is score.Pricing.Cost of plan p's devices on the node's view
// (ViewNodeInfo's).
func (pl *GPUPack) supplyCost(s *cycleState, view gpucache.NodeView, p plan) float64 {
	var err error
	if p.taken.Whole == 0 && len(p.taken.Shares) == 0 {
		if p, err = pl.makePlan(view, s.requests, pl.workload.Distribution(), false); err != nil {
			return 0
		}
	}
	return s.pricing.Cost(view.State, p.taken)
}

// rankedPool recycles NormalizeScore's working slice (one entry per scored
// node, every cycle).
var rankedPool = sync.Pool{New: func() any { return new([]score.Ranked) }}

// ScoreExtensions returns the plugin: it normalizes its scores.
func (pl *GPUPack) ScoreExtensions() fwk.ScoreExtensions { return pl }

// NormalizeScore is pkg/score's Rank.Normalize over the scored nodes: 100
// minus the node's fragmentation steps behind the best node (at least 0),
// blended for multi-GPU requests by the args' weights with 100 x the
// smaller of the set's ring over the best its node's shape offers and its
// ring over the best ideal ring among the scored nodes of its GPU family
// (the compute capability labels, gpuFamily; setFamilies), both capped at
// one NVLink lane. The simulator (pkg/sim) ranks nodes with the same two
// functions.
func (pl *GPUPack) NormalizeScore(_ context.Context, cs fwk.CycleState, _ *v1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		if _, ok := readCPUOnly(cs); ok {
			normalizeCPUOnly(scores)
			return nil
		}
		return fwk.AsStatus(err)
	}
	rp := rankedPool.Get().(*[]score.Ranked)
	defer rankedPool.Put(rp)
	ranked := slices.Grow((*rp)[:0], len(scores))[:len(scores)]
	*rp = ranked
	for i, ns := range scores {
		ranked[i] = score.Ranked{Raw: ns.Score} // the pool's entries are stale
	}
	// The plans' ring and ideal: Filter's on adjusted nodes and Score's for
	// pods of several requests are in the cycle state; the others are the
	// nodes' last plans, which Score has just made or confirmed.
	s.mu.Lock()
	if len(s.plans.byNode) > 0 {
		for i, ns := range scores {
			if p, ok := s.plans.byNode[ns.Name]; ok && p.ideal > 0 {
				ranked[i].Ring, ranked[i].Ideal = p.ring, p.ideal
			}
		}
	}
	s.mu.Unlock()
	if s.quality && s.requestID != 0 {
		pl.cache.ForEachLastPlan(scores, s.requestID, pl.workload.Distribution(), func(i int, f gpucache.Figures) {
			if ranked[i].Ideal == 0 && f.Ideal > 0 {
				ranked[i].Ring, ranked[i].Ideal = f.Ring, f.Ideal
			}
		})
	}
	pl.setFamilies(ranked, scores)
	pl.rank.Normalize(ranked)
	for i := range scores {
		scores[i].Score = ranked[i].Score
	}
	return nil
}
