package gpupack

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

// plan is the device choice for every GPU container of a pod on one node.
type plan struct {
	// choices are kept only when the plan names devices (Reserve); Filter
	// and Score need the figures below. reqs are the requests as the node
	// serves them (resolve), one per choice.
	choices   []score.Choice
	reqs      []containerRequest
	fragDelta float64
	// taken are the choices' whole GPUs and replicas (Score prices them);
	// not kept in a node's last plan (the figures stay small: Filter and
	// Score store one for most nodes of every cycle), so empty in a plan
	// made from one.
	taken score.Taken
	// ratio is the worst quality ratio of the multi-GPU sets (1 if none);
	// ring and ideal are that set's bandwidths (0 when none).
	ratio, ring, ideal float64
}

// figures are the plan's numbers, which a node keeps as its last plan
// (gpucache.NodeView.StoreLastPlan).
func (p plan) figures() gpucache.Figures {
	return gpucache.Figures{FragDelta: p.fragDelta, Ratio: p.ratio, Ring: p.ring, Ideal: p.ideal}
}

// planOf is the plan of a node's last plan figures (no choices).
func planOf(f gpucache.Figures) plan {
	return plan{fragDelta: f.FragDelta, ratio: f.Ratio, ring: f.Ring, ideal: f.Ideal}
}

// makePlan chooses devices for each request in turn on view under the
// workload snapshot dist, each choice seeing the ones before it. It fails
// with the reason when one does not fit: errNeverFits when the requests
// would not fit the node even with none of its devices in use (no
// preemption can make room; healthy devices, layout and published names
// as they are now). names: name the devices (Reserve); Filter and Score
// only need the figures.
func (pl *GPUPack) makePlan(view gpucache.NodeView, reqs []containerRequest, dist *score.Distribution, names bool) (plan, error) {
	reqs, err := pl.resolveAll(view.Topology, reqs)
	if err != nil {
		return plan{}, err
	}
	p, failed, at := planAt(view.State, reqs, dist, names)
	if failed < 0 {
		return p, nil
	}
	r := reqs[failed]
	err = noRoom(at, r)
	// The cache's empty State of the node, built once per topology: Filter
	// asks this of every node a full cluster rejects, and a State built
	// here each time cost 8 allocations and a read lock on pkg/score's
	// global layout table per node (BenchmarkFilterRejects).
	empty := view.Empty
	if empty == nil || empty.Node() != view.Topology {
		empty = score.NewState(view.Topology)
	}
	if _, never, emptyAt := planAt(empty, reqs, dist, false); never >= 0 {
		// How many the request may take with none in use, when that
		// differs from now: "(3 free), even with none in use (8 free then)".
		if q := r.req; never == failed && q.Kind == score.KindWhole {
			if n := freeWhole(emptyAt, q); n != freeWhole(at, q) {
				return plan{}, errNeverFits{fmt.Errorf("%w, even with none in use (%d free then)", err, n)}
			}
		}
		return plan{}, errNeverFits{fmt.Errorf("%w, even with none in use", err)}
	}
	return plan{}, err
}

// planOn is makePlan's choice of devices on st for requests already
// resolved; failed is the index of the first request that does not fit
// (-1 when all do).
func planOn(st *score.State, reqs []containerRequest, dist *score.Distribution, names bool) (p plan, failed int) {
	p, failed, _ = planAt(st, reqs, dist, names)
	return p, failed
}

// planAt is planOn that also returns, when a request does not fit, the
// state it was tried on (st with the requests before it applied), for the
// reason (noRoom).
func planAt(st *score.State, reqs []containerRequest, dist *score.Distribution, names bool) (p plan, failed int, at *score.State) {
	p = plan{ratio: 1}
	choose := score.Evaluate
	if names {
		choose = score.Choose
	}
	for i, r := range reqs {
		c, ok := choosePooled(st, r, dist, choose)
		if !ok {
			return plan{}, i, st
		}
		if names {
			p.choices = append(p.choices, c)
			p.reqs = append(p.reqs, r)
		}
		p.fragDelta += c.FragDelta
		p.taken.Add(c)
		if qualityCounts(r.req) {
			if q := c.QualityRatio(); q < p.ratio || p.ideal == 0 {
				p.ratio, p.ring, p.ideal = q, c.Quality.RingGBps, c.Ideal.RingGBps
			}
		}
		if i < len(reqs)-1 {
			if i == 0 {
				st = st.Clone()
			}
			st.Apply(c)
			if cpu, mem, ok := st.FreeResources(); ok && (r.req.CPUMilli > 0 || r.req.MemoryMiB > 0) {
				st.SetFree(cpu-r.req.CPUMilli, mem-r.req.MemoryMiB)
			}
		}
	}
	return p, -1, nil
}

// noRoom is the reason request r does not fit state st, naming what it
// needs in the node's words, and for whole GPUs how many of the ones it may
// take are free: "no 8 free healthy whole GPUs for 8 x nvidia.com/gpu (3
// free)". Filter makes one for every node a full cluster rejects: a format
// each, no more allocations than the message needs (BenchmarkFilterRejects).
func noRoom(st *score.State, r containerRequest) error {
	q := r.req
	model := ""
	if q.Model != "" {
		model = " of model " + q.Model
	}
	one := q.Count == 1
	switch q.Kind {
	case score.KindWhole:
		if one {
			return fmt.Errorf("no free healthy whole GPU%s for 1 x %s (%d free)", model, r.resource, freeWhole(st, q))
		}
		return fmt.Errorf("no %d free healthy whole GPUs%s%s for %d x %s (%d free)", q.Count, model, hintNote(q), q.Count, r.resource, freeWhole(st, q))
	case score.KindShared:
		switch {
		case len(freshCounts(r.uses)) >= 2:
			return fmt.Errorf("no %d free healthy replicas%s, each container's on one GPU, for %d x %s", q.Count, model, q.Count, r.resource)
		case one:
			return fmt.Errorf("no GPU%s with 1 free healthy replica for 1 x %s", model, r.resource)
		case q.Policy == score.Spread:
			return fmt.Errorf("no %d GPUs%s with a free healthy replica each (replica policy spread) for %d x %s", q.Count, model, q.Count, r.resource)
		}
		return fmt.Errorf("no GPU%s with %d free healthy replicas (replica policy packed: on one GPU) for %d x %s", model, q.Count, q.Count, r.resource)
	case score.KindMIG:
		if one {
			return fmt.Errorf("no free healthy %s MIG device%s for 1 x %s", q.MIGProfile, model, r.resource)
		}
		return fmt.Errorf("no %d free healthy %s MIG devices%s for %d x %s", q.Count, q.MIGProfile, model, q.Count, r.resource)
	}
	return fmt.Errorf("no free healthy %s for %d x %s", q.Kind, q.Count, r.resource)
}

// freeWhole is how many of st's GPUs whole request q may take are free:
// entirely free, healthy, not in MIG mode, of its model, and not
// time-shared when the resource leaves those out (NoShared).
func freeWhole(st *score.State, q score.Request) int {
	n := 0
	gpus := st.Node().GPUs
	for i := range st.FreeGPUs().All() {
		if i >= len(gpus) || (q.NoShared && gpus[i].Replicas > 1) || !modelIn(gpus[i].Model, q.Model) {
			continue
		}
		n++
	}
	return n
}

// modelIn reports whether model is one of the "|"-separated names of list
// ("" accepts any), as pkg/score matches a request's model.
func modelIn(model, list string) bool {
	return list == "" || slices.Contains(strings.Split(list, "|"), model)
}

// errNeverFits marks makePlan's errors for requests that would not fit
// the node even with all of its healthy devices free: Filter answers
// UnschedulableAndUnresolvable, so that preemption does not try the node.
type errNeverFits struct{ error }

func (e errNeverFits) Unwrap() error { return e.error }

// choosePooled is choose for request r, and for a pod-level request of
// replicas (regular init containers' resource: uses) the kubelet's way:
// each container's new replicas are one allocation of their own, placed
// by the replica policy on their own (packed: one GPU each, not the
// pod's whole peak on one GPU), each seeing the ones before it. The
// choices are one Choice of the replicas in all.
func choosePooled(st *score.State, r containerRequest, dist *score.Distribution, choose func(*score.State, score.Request, *score.Distribution) (score.Choice, bool)) (score.Choice, bool) {
	chunks := freshCounts(r.uses)
	if r.req.Kind != score.KindShared || len(chunks) < 2 {
		return choose(st, r.req, dist)
	}
	w := st.Clone()
	out := score.Choice{Kind: score.KindShared}
	perGPU := map[int]int{}
	for _, n := range chunks {
		q := r.req
		q.Count = n
		c, ok := choose(w, q, dist)
		if !ok {
			return score.Choice{}, false
		}
		w.Apply(c)
		out.FragDelta += c.FragDelta
		out.GPUs |= c.GPUs
		for _, sh := range c.Shares {
			perGPU[sh.GPU] += sh.Replicas
		}
	}
	for _, g := range slices.Sorted(maps.Keys(perGPU)) {
		out.Shares = append(out.Shares, score.Share{GPU: g, Replicas: perGPU[g]})
	}
	return out, true
}

// errNoView marks planFor's errors that come from the node itself (no
// readable topology or in-use report), not from the request.
type errNoView struct{ error }

func (e errNoView) Unwrap() error { return e.error }

// planFor is the pod's plan (without device names) on the node as the cache
// sees it. Filter and Score ask it for every node of every cycle, so a
// node keeps its last answers for one-request pods (lastPlans): a later pod
// with the same request finds its plan while the node's usage State (which
// also carries its free CPU and memory) and the workload snapshot are the
// same objects, the answer's whole input. A node with no usable view fails
// with errNoView.
func (pl *GPUPack) planFor(ni fwk.NodeInfo, s *cycleState) (plan, error) {
	p, _, err := pl.planView(ni, s)
	return p, err
}

// planView is planFor that also returns the node's view it planned on
// (Score prices the plan on it, without looking the node up again).
func (pl *GPUPack) planView(ni fwk.NodeInfo, s *cycleState) (plan, gpucache.NodeView, error) {
	view, err := pl.cache.ViewNodeInfo(ni)
	if err != nil {
		return plan{}, view, errNoView{err}
	}
	dist := pl.workload.Distribution()
	if s.requestID == 0 {
		p, err := pl.makePlan(view, s.requests, dist, false)
		return p, view, err
	}
	if f, err, ok := view.LastPlan(dist, s.requestID); ok {
		return planOf(f), view, err
	}
	p, err := pl.makePlan(view, s.requests, dist, false)
	view.StoreLastPlan(dist, s.requestID, p.figures(), err)
	return p, view, err
}

// qualityCounts reports whether the link quality of the request's set
// enters NormalizeScore: a set of 2 or more whole GPUs whose hint is not
// none.
func qualityCounts(r score.Request) bool {
	return r.Kind == score.KindWhole && r.Count > 1 && r.Topology != score.HintNone
}

func hintNote(r score.Request) string {
	if r.Kind == score.KindWhole && r.Count > 1 && r.Topology == score.HintRequired {
		return " with the best link class of the node (topology: required)"
	}
	return ""
}

// deviceIDs names the plan's devices; replica numbers are picked against
// used (the node's usage) so that they are free. A pod-level request's
// devices are split among its containers as the kubelet will, each
// container's new devices chosen by pick (containerSets).
func (p *plan) deviceIDs(node *topology.Node, reqs []containerRequest, used map[string]bool, pick func(*topology.Node, score.Request) pickFunc) (protocol.Devices, []string) {
	d := protocol.Devices{Resources: map[string][]string{}, Containers: map[string]map[string][]string{}}
	var all []string
	for i, c := range p.choices {
		ids := c.DeviceIDs
		if c.Kind == score.KindShared {
			ids = score.ReplicaIDs(node, c.Shares, used)
		}
		for _, id := range ids {
			used[id] = true
		}
		r := reqs[i]
		d.Resources[r.resource] = append(d.Resources[r.resource], ids...)
		for container, set := range r.containerSets(ids, pick(node, r.req)) {
			if d.Containers[container] == nil {
				d.Containers[container] = map[string][]string{}
			}
			d.Containers[container][r.resource] = append(d.Containers[container][r.resource], set...)
		}
		all = append(all, ids...)
	}
	return d, all
}
