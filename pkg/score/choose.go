package score

import (
	"fmt"

	"github.com/gpupack/gpupack/pkg/topology"
)

// eps absorbs float noise when comparing fragmentation and quality.
const eps = 1e-9

// The decision: which devices a request gets on a node.
//
// Among the feasible device sets, choose takes the one that
//  1. increases the node's Fragmentation least (frag.go), then
//  2. has the best ring bandwidth, then the best sum of pairwise bandwidth
//     (topology.Quality; whole GPUs, 2 or more, unless the hint is
//     HintNone), then
//  3. has the least bandwidth to the GPUs left free (for one GPU: the
//     worst-linked card, which keeps well-linked pairs free), then
//  4. has the smallest bitmask (topology.GPUSet as a number: the set whose
//     highest differing GPU is lower; {1,2} before {0,3}).
//
// Each kind of device has its strategy file: whole.go, shared.go, mig.go.
// The decision is reached through three entries, one per caller, all
// ending in choose:
//
//   - Choose: the scheduler plugin (Reserve, and preemption's trial
//     placements) and gpusim, on a State;
//   - Evaluate: Choose's figures without device IDs, for the scheduler's
//     Filter and Score (allocates nothing when the memo answers);
//   - Preferred (preferred.go): the device plugin's GetPreferredAllocation,
//     on the kubelet's available devices with must-include devices.
//
// TestDecisionTable (decision_test.go) pins the answers on the catalog
// machines through all three.

// Choose is the devices the request gets on the node in state s under the
// workload snapshot d (nil: the default distribution); false when the
// request does not fit or is invalid. It does not modify s. DeviceIDs are
// set for whole GPUs and MIG devices; a shared request's replicas are in
// Shares (ReplicaIDs names them).
//
// Answers are memoized per (node layout, usage, request, workload snapshot):
// nodes of one layout with the same usage share one computation (memo.go).
func Choose(s *State, req Request, d *Distribution) (Choice, bool) {
	d, ok := prepare(s, req, d)
	if !ok {
		return Choice{}, false
	}
	return s.chooseMemo(req, d, true)
}

// Evaluate is Choose without naming the devices: the Choice is the same but
// DeviceIDs stay empty. It is what scoring a node needs.
func Evaluate(s *State, req Request, d *Distribution) (Choice, bool) {
	d, ok := prepare(s, req, d)
	if !ok {
		return Choice{}, false
	}
	c, ok := s.chooseMemo(req, d, false)
	if ok {
		c.DeviceIDs = nil
	}
	return c, ok
}

// prepare is every entry's preamble: a state, a valid request, and the
// default distribution for nil.
func prepare(s *State, req Request, d *Distribution) (*Distribution, bool) {
	if s == nil || req.Validate() != nil {
		return nil, false
	}
	if d == nil {
		d = defaultDistribution
	}
	return d, true
}

// must holds devices a choice has to include (GetPreferredAllocation's
// mustInclude).
type must struct {
	gpus   topology.GPUSet // whole GPUs
	shares []Share         // replicas already taken by the request
	mig    []int           // MIG devices
}

// choose is the decision itself, on a prepared state, request and
// distribution (the memo calls it on a miss).
func choose(s *State, req Request, d *Distribution, m must) (Choice, bool) {
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

// better reports whether a beats b, in the order above: less
// fragmentation increase, better quality (when it counts), less boundary
// bandwidth, smaller bitmask.
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

// String renders a choice for logs.
func (c Choice) String() string {
	if c.GPUs.Len() <= 1 {
		return fmt.Sprintf("%s %v fragDelta=%+.3f", c.Kind, c.DeviceIDs, c.FragDelta)
	}
	return fmt.Sprintf("%s %v quality=%.1f/%.1fGB/s fragDelta=%+.3f", c.Kind, c.DeviceIDs, c.Quality.RingGBps, c.Ideal.RingGBps, c.FragDelta)
}
