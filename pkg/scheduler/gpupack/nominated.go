package gpupack

import (
	"context"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/scheduler/gpucache"
	"github.com/gpupack/gpupack/pkg/score"
)

// adjustment is what the framework added to or removed from one node for
// this evaluation: nominated pods (their GPUs are not chosen yet, so their
// requests are placed as the plugin would place them) and preemption
// victims (their devices count as free). The adjusted view is a function
// of the adjustment alone, and AddPod and RemovePod are exact inverses on
// it: removing a pod and adding it back (preemption's reprieve), or adding
// a nominated pod and removing it, restores the adjustment, and so the
// node's device state, as it was, whatever the pod holds or asks (whole
// GPUs, MIG devices, replicas).
type adjustment struct {
	// added are the nominated pods in the order the framework added them
	// (the order their requests are placed in). A pod removed again stays
	// in its place, marked gone, so that adding it back places it as
	// before.
	added []addedPod
	// removed are pods present on the node (holding devices, or not known
	// to hold any) that the framework removed.
	removed []types.UID
}

type addedPod struct {
	uid  types.UID
	reqs []containerRequest
	gone bool
	// cpuMilli and memMiB: the pod's CPU and memory (Reserve subtracts
	// them from the node's free figures, as the framework's NodeInfo does
	// for Filter).
	cpuMilli, memMiB int64
}

// AddPod accounts a pod the framework adds to the node for this
// evaluation: a victim removed before is present again; a nominated pod's
// GPU requests are placed.
func (pl *GPUPack) AddPod(_ context.Context, cs fwk.CycleState, _ *v1.Pod, podInfo fwk.PodInfo, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		return noGPUState(cs, err)
	}
	pod := podInfo.GetPod()
	node := nodeInfo.Node().Name
	a := s.adjustment(node)
	if i := slices.Index(a.removed, pod.UID); i >= 0 {
		a.removed = slices.Delete(slices.Clone(a.removed), i, i+1)
		return nil
	}
	if i := slices.IndexFunc(a.added, func(p addedPod) bool { return p.uid == pod.UID }); i >= 0 {
		a.added = slices.Clone(a.added)
		a.added[i].gone = false
		return nil
	}
	if len(pl.cache.HeldBy(node, pod.UID)) > 0 {
		return nil // reserved or bound here: the cache counts it already
	}
	a.added = append(slices.Clip(a.added), pl.nominated(pod))
	return nil
}

// RemovePod frees a pod's devices on the node for this evaluation (a
// preemption victim), or takes back a nominated pod added before.
func (pl *GPUPack) RemovePod(_ context.Context, cs fwk.CycleState, _ *v1.Pod, podInfo fwk.PodInfo, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		return noGPUState(cs, err)
	}
	uid := podInfo.GetPod().UID
	a := s.adjustment(nodeInfo.Node().Name)
	if i := slices.IndexFunc(a.added, func(p addedPod) bool { return p.uid == uid && !p.gone }); i >= 0 {
		a.added = slices.Clone(a.added)
		a.added[i].gone = true
		return nil
	}
	if !slices.Contains(a.removed, uid) {
		a.removed = append(slices.Clip(a.removed), uid)
	}
	return nil
}

// nominated is a pod to place as nominated. A pod whose requests cannot
// be parsed, or that asks no GPU, places nothing.
func (pl *GPUPack) nominated(pod *v1.Pod) addedPod {
	p := addedPod{uid: pod.UID}
	if reqs, _, err := pl.parse(pod); err == nil {
		p.reqs = reqs
	}
	p.cpuMilli, p.memMiB = podCPUMemory(pod)
	return p
}

// nominatedOn is the adjustment Filter saw on node through the framework
// (addGENominatedPods): the pods nominated to it with at least pod's
// priority, pod itself excepted, that the cache does not hold there yet.
// Reserve chooses the devices around them, as Filter admitted the node.
func (pl *GPUPack) nominatedOn(pod *v1.Pod, node string) *adjustment {
	if pl.handle == nil {
		return nil
	}
	var a *adjustment
	prio := corev1helpers.PodPriority(pod)
	for _, pi := range pl.handle.NominatedPodsForNode(node) {
		p := pi.GetPod()
		if p.UID == pod.UID || corev1helpers.PodPriority(p) < prio || len(pl.cache.HeldBy(node, p.UID)) > 0 {
			continue
		}
		if a == nil {
			a = &adjustment{}
		}
		a.added = append(a.added, pl.nominated(p))
	}
	return a
}

// adjustment returns a fresh copy of node's adjustment, stored in s (the
// old one may be shared with the state this one was cloned from; its
// slices are cloned before they change).
func (s *cycleState) adjustment(node string) *adjustment {
	if s.adjust == nil {
		s.adjust = map[string]*adjustment{}
	}
	a := &adjustment{}
	if old := s.adjust[node]; old != nil {
		*a = *old
	}
	s.adjust[node] = a
	return a
}

// adjusted returns view with the node's adjustment applied: the removed
// pods' devices free, then the nominated pods placed in turn by the
// plugin's own choice, as makePlan places a pod (a nominated pod that does
// not fit adds nothing).
// subtractNominated: also take the nominated pods' CPU and memory from the
// node's free figures (Reserve; Filter's NodeInfo counts them already).
func (pl *GPUPack) adjusted(view gpucache.NodeView, a *adjustment, subtractNominated bool) gpucache.NodeView {
	st, _ := score.StateOf(view.Topology, view.Used(a.removed))
	if cpu, mem, ok := view.State.FreeResources(); ok {
		if subtractNominated {
			for _, p := range a.added {
				if !p.gone {
					cpu, mem = cpu-p.cpuMilli, mem-p.memMiB
				}
			}
		}
		st.SetFree(cpu, mem)
	}
	dist := pl.workload.Distribution()
	for _, p := range a.added {
		if p.gone {
			continue
		}
		trial := st.Clone()
		ok := true
		for _, r := range p.reqs {
			r, err := pl.resolve(view.Topology, r) // as this node serves it
			if err != nil {
				ok = false
				break
			}
			// Per container's new replicas, as the pod itself is
			// placed (plan.go): the pooled peak as one allocation
			// may fit nowhere, and the pod would then hold nothing.
			c, fits := choosePooled(trial, r, dist, score.Choose)
			if !fits {
				ok = false
				break
			}
			trial.Apply(c)
		}
		if ok {
			st = trial
		}
	}
	return view.WithState(st)
}

// noGPUState is AddPod's and RemovePod's answer for a pod without GPU
// requests: nothing to account for a CPU-only pod whose Filter runs only
// for the resources it lists at 0 (zero.go); an error otherwise.
func noGPUState(cs fwk.CycleState, err error) *fwk.Status {
	if _, ok := readZeroAsks(cs); ok {
		return nil
	}
	return fwk.AsStatus(err)
}
