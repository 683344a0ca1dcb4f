package gpucache

import "github.com/gpupack/gpupack/pkg/score"

// maxLastPlans is how many requests a node keeps plans for: the distinct
// requests of a steady stream of pods are few (a cycle visits a node only
// every so many pods, so keeping one would mostly miss).
const maxLastPlans = 4

// lastPlans are the plugin's plan figures for a few one-request pods, by
// request ID, on one usage State under one workload snapshot: a plan
// and its error depend on nothing else. Filter's and Score's plans name no
// devices, so only their figures are kept. Small and flat: Filter and
// Score read it for every node of every cycle.
type lastPlans struct {
	state *score.State
	dist  *score.Distribution
	n     int
	ids   [maxLastPlans]uint64
	plans [maxLastPlans]Figures
	errs  [maxLastPlans]error
}

// Figures are a plan's numbers without its device choices: what Filter and
// Score need (the scheduler plugin's plan).
type Figures struct {
	// FragDelta is the fragmentation change of the plan, in GPUs.
	FragDelta float64
	// Ratio, Ring and Ideal are the worst set quality among the plan's
	// multi-GPU requests: ring bandwidth over ideal, and both (GB/s).
	Ratio, Ring, Ideal float64
}

// find returns the plan for request id on state under dist.
func (l *lastPlans) find(state *score.State, dist *score.Distribution, id uint64) (Figures, error, bool) {
	if l == nil || l.state != state || l.dist != dist {
		return Figures{}, nil, false
	}
	for i := range l.n {
		if l.ids[i] == id {
			return l.plans[i], l.errs[i], true
		}
	}
	return Figures{}, nil, false
}

// with returns l (or new plans when l is for another state or snapshot)
// with request id's plan too, as a value (the caller's hotView holds it):
// the oldest goes when full. l is not changed.
func (l *lastPlans) with(state *score.State, dist *score.Distribution, id uint64, f Figures, err error) lastPlans {
	out := lastPlans{state: state, dist: dist}
	if l != nil && l.state == state && l.dist == dist {
		out = *l
	}
	if out.n == maxLastPlans {
		copy(out.ids[:], out.ids[1:])
		copy(out.plans[:], out.plans[1:])
		copy(out.errs[:], out.errs[1:])
		out.n--
	}
	out.ids[out.n], out.plans[out.n], out.errs[out.n] = id, f, err
	out.n++
	return out
}
