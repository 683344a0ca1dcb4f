package gpupack

import (
	"context"
	"math"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// PreScore skips scoring for pods without GPU requests.
func (pl *GPUPack) PreScore(_ context.Context, cs fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	if _, err := readState(cs); err != nil {
		return fwk.NewStatus(fwk.Skip)
	}
	return nil
}

// Score returns the node's fragmentation gain -(F after - F before) in
// milli-GPUs at its best device choice (from Filter's plan);
// NormalizeScore blends it with link quality.
func (pl *GPUPack) Score(_ context.Context, cs fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	s, err := readState(cs)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	name := nodeInfo.Node().Name
	p, ok := s.plan(name)
	if !ok { // Filter did not run for this node (e.g. another profile)
		view, err := pl.cache.View(nodeInfo.Node())
		if err != nil {
			return 0, fwk.AsStatus(err)
		}
		if p, err = pl.makePlan(view, s.requests, false); err != nil {
			return 0, fwk.AsStatus(err)
		}
		s.setPlan(name, p)
	}
	return int64(math.Round(-p.fragDelta * 1000)), nil
}

// ScoreExtensions returns the plugin: it normalizes its scores.
func (pl *GPUPack) ScoreExtensions() fwk.ScoreExtensions { return pl }

// NormalizeScore maps each node to
//
//	(wf * frag + wt * topo) / (wf + wt)
//
// where frag is the fragmentation gain min-max normalized over the nodes to
// 0..100 (100: the node whose fragmentation rises least) and topo is 100 x
// the chosen set's ring bandwidth over the best ideal set of that size on
// any scored node's shape (100 for single-GPU, shared and MIG requests).
func (pl *GPUPack) NormalizeScore(_ context.Context, cs fwk.CycleState, _ *v1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if len(scores) == 0 {
		return nil
	}
	lo, hi := scores[0].Score, scores[0].Score
	var bestIdeal float64
	for _, ns := range scores {
		lo, hi = min(lo, ns.Score), max(hi, ns.Score)
		if p, ok := s.plan(ns.Name); ok {
			bestIdeal = max(bestIdeal, p.ideal)
		}
	}
	wf, wt := float64(pl.wfrag), float64(pl.wtopo)
	for i, ns := range scores {
		frag := 100.0
		if hi > lo {
			frag = 100 * float64(ns.Score-lo) / float64(hi-lo)
		}
		topo := 100.0
		if p, ok := s.plan(ns.Name); ok && bestIdeal > 0 && p.ideal > 0 {
			topo = 100 * math.Min(1, p.ring/bestIdeal)
		}
		scores[i].Score = int64(math.Round((wf*frag + wt*topo) / (wf + wt) * float64(fwk.MaxNodeScore) / 100))
	}
	return nil
}
