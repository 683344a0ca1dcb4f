package gpupack

import (
	"sync"

	"github.com/gpupack/gpupack/pkg/score"
)

// maxLastPlans is how many requests a node keeps plans for: the distinct
// requests of a steady stream of pods are few (a cycle visits a node only
// every so many pods, so keeping one would mostly miss).
const maxLastPlans = 4

// lastPlans are makePlan's answers for a few one-request pods, by request
// ID (requestIDs), on one usage State under one workload snapshot: a plan
// and its error depend on nothing else. Filter's and Score's plans name no
// devices, so only their figures are kept. Small and flat: Filter and
// Score read it for every node of every cycle.
type lastPlans struct {
	state *score.State
	dist  *score.Distribution
	n     int
	ids   [maxLastPlans]uint64
	plans [maxLastPlans]planFigures
	errs  [maxLastPlans]error
}

// planFigures are a plan without its choices.
type planFigures struct{ fragDelta, ratio, ring, ideal float64 }

func (p plan) figures() planFigures { return planFigures{p.fragDelta, p.ratio, p.ring, p.ideal} }

func (f planFigures) plan() plan {
	return plan{fragDelta: f.fragDelta, ratio: f.ratio, ring: f.ring, ideal: f.ideal}
}

// find returns the plan for request id on state under dist.
func (l *lastPlans) find(state *score.State, dist *score.Distribution, id uint64) (plan, error, bool) {
	if l == nil || l.state != state || l.dist != dist {
		return plan{}, nil, false
	}
	for i := range l.n {
		if l.ids[i] == id {
			return l.plans[i].plan(), l.errs[i], true
		}
	}
	return plan{}, nil, false
}

// with returns a copy of l (or new plans when l is for another state or
// snapshot) that also holds request id's plan; the oldest goes when full.
func (l *lastPlans) with(state *score.State, dist *score.Distribution, id uint64, p plan, err error) *lastPlans {
	out := &lastPlans{state: state, dist: dist}
	if l != nil && l.state == state && l.dist == dist {
		*out = *l
	}
	if out.n == maxLastPlans {
		copy(out.ids[:], out.ids[1:])
		copy(out.plans[:], out.plans[1:])
		copy(out.errs[:], out.errs[1:])
		out.n--
	}
	out.ids[out.n], out.plans[out.n], out.errs[out.n] = id, p.figures(), err
	out.n++
	return out
}

// requestIDs numbers the distinct requests of one-request pods (what a
// plan depends on: the score.Request and, for its error, the resource name)
// so that a node's lastPlans compare one number. IDs are never reused;
// past maxRequestIDs the table starts over (older IDs then simply miss).
type requestIDs struct {
	mu   sync.Mutex
	ids  map[requestKey]uint64
	next uint64
}

type requestKey struct {
	req       score.Request
	resource  string
	podPolicy bool
}

const maxRequestIDs = 1 << 10

func (r *requestIDs) id(c containerRequest) uint64 {
	k := requestKey{c.req, c.resource, c.podPolicy}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.ids[k]; ok {
		return id
	}
	if r.ids == nil || len(r.ids) >= maxRequestIDs {
		r.ids = make(map[requestKey]uint64)
	}
	r.next++
	r.ids[k] = r.next
	return r.next
}
