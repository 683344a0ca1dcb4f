package gpupack

import (
	"context"
	"maps"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/score"
)

// adjustment is what the framework asked to add to or remove from one
// node for this evaluation: nominated pods (their GPUs are not chosen yet,
// so their requests are placed as the plugin would place them) and
// preemption victims (their devices count as free).
type adjustment struct {
	added   []addedPod
	removed []types.UID
}

type addedPod struct {
	uid  types.UID
	reqs []containerRequest
}

// AddPod accounts a nominated pod's GPUs on the node for this evaluation.
func (pl *GPUPack) AddPod(_ context.Context, cs fwk.CycleState, _ *v1.Pod, podInfo fwk.PodInfo, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	pod := podInfo.GetPod()
	node := nodeInfo.Node().Name
	if held, _, ok := pl.cache.PodDevices(pod.UID); ok && held == node {
		return nil // reserved or bound: the cache counts it already
	}
	reqs, _, err := pl.parse(pod)
	if err != nil || len(reqs) == 0 {
		return nil // a malformed nominated pod cannot be placed: it adds nothing
	}
	a := s.adjustment(node)
	a.added = append(slices.Clip(a.added), addedPod{uid: pod.UID, reqs: reqs})
	return nil
}

// RemovePod frees a pod's devices on the node for this evaluation (a
// preemption victim, or a nominated pod added before).
func (pl *GPUPack) RemovePod(_ context.Context, cs fwk.CycleState, _ *v1.Pod, podInfo fwk.PodInfo, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	uid := podInfo.GetPod().UID
	a := s.adjustment(nodeInfo.Node().Name)
	if i := slices.IndexFunc(a.added, func(p addedPod) bool { return p.uid == uid }); i >= 0 {
		a.added = slices.Delete(slices.Clone(a.added), i, i+1)
		return nil
	}
	a.removed = append(slices.Clip(a.removed), uid)
	return nil
}

// adjustment returns a fresh copy of node's adjustment, stored in s (the
// old one may be shared with the state this one was cloned from).
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

// adjusted returns view with the node's adjustment applied: victims'
// devices freed, then nominated pods placed by the plugin's own choice (a
// nominated pod that does not fit adds nothing).
func (pl *GPUPack) adjusted(view NodeView, node string, a *adjustment) NodeView {
	used := pl.cache.Used(node)
	for _, uid := range a.removed {
		for _, id := range pl.cache.HeldBy(node, uid) {
			delete(used, id)
		}
	}
	st, _ := score.StateOf(view.Topology, maps.Clone(used))
	if cpu, mem, ok := view.State.FreeResources(); ok {
		st.SetFree(cpu, mem) // the framework's NodeInfo counts the nominated pods' CPU and memory
	}
	dist := pl.workload.Distribution()
	for _, p := range a.added {
		trial := st.Clone()
		ok := true
		for _, r := range p.reqs {
			r, err := pl.resolve(view.Topology, r) // as this node serves it
			if err != nil {
				ok = false
				break
			}
			c, fits := score.ChooseState(trial, r.req, dist)
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
	return NodeView{Topology: view.Topology, State: st}
}
