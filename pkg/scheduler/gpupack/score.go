package gpupack

import (
	"context"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/score"
)

// PreScore skips scoring for pods without GPU requests.
func (pl *GPUPack) PreScore(_ context.Context, cs fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	if _, err := readState(cs); err != nil {
		return fwk.NewStatus(fwk.Skip)
	}
	return nil
}

// MaxNodeScore must be pkg/score's (it imports nothing from Kubernetes).
var (
	_ [fwk.MaxNodeScore - score.MaxNodeScore]struct{}
	_ [score.MaxNodeScore - fwk.MaxNodeScore]struct{}
)

// Score returns the node's raw figure, pkg/score's Rank.Raw of the
// fragmentation change at its best device choice (from Filter's plan):
// the fragmentation gain in steps of score.DefaultResolution GPUs.
// NormalizeScore maps the feasible nodes' figures to 0..100.
func (pl *GPUPack) Score(_ context.Context, cs fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	s, err := readState(cs)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	name := nodeInfo.Node().Name
	p, ok := s.plan(name)
	if !ok { // Filter did not run for this node (e.g. another profile)
		view, err := pl.cache.ViewOf(nodeInfo)
		if err != nil {
			return 0, fwk.AsStatus(err)
		}
		if p, err = pl.makePlan(view, s.requests, false); err != nil {
			return 0, fwk.AsStatus(err)
		}
		s.setPlan(name, p)
	}
	return pl.rank.Raw(p.fragDelta), nil
}

// ScoreExtensions returns the plugin: it normalizes its scores.
func (pl *GPUPack) ScoreExtensions() fwk.ScoreExtensions { return pl }

// NormalizeScore is pkg/score's Rank.Normalize over the scored nodes: 100
// minus the node's fragmentation steps behind the best node (at least 0),
// blended for multi-GPU requests with 100 x the set's ring bandwidth over
// the best ideal ring among the nodes by the args' weights. The simulator
// (pkg/sim) ranks nodes with the same two functions.
func (pl *GPUPack) NormalizeScore(_ context.Context, cs fwk.CycleState, _ *v1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	ranked := make([]score.Ranked, len(scores))
	for i, ns := range scores {
		ranked[i].Raw = ns.Score
		if p, ok := s.plan(ns.Name); ok && p.ideal > 0 {
			ranked[i].Ring, ranked[i].Ideal = p.ring, p.ideal
		}
	}
	pl.rank.Normalize(ranked)
	for i := range scores {
		scores[i].Score = ranked[i].Score
	}
	return nil
}
