package gpupack

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
)

const devicesKey fwk.StateKey = Name + "/devices"

// reserved is the choice Reserve made, for PreBind.
type reserved struct{ devices protocol.Devices }

// Clone shares the (immutable) choice.
func (r *reserved) Clone() fwk.StateData { return r }

// Reserve chooses the exact devices against the cache's current usage (other
// pods may have been reserved since Filter) and holds them for the pod.
func (pl *GPUPack) Reserve(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		return nil // no GPU request: nothing to hold
	}
	logger := klog.FromContext(ctx)
	nodeInfo, err := pl.handle.SnapshotSharedLister().NodeInfos().Get(nodeName)
	if err != nil {
		return fwk.AsStatus(fmt.Errorf("getting node %q from snapshot: %w", nodeName, err))
	}
	view, err := pl.cache.ViewOf(nodeInfo)
	if err != nil {
		return fwk.NewStatus(fwk.Unschedulable, "gpupack: "+err.Error())
	}
	p, err := pl.makePlan(view, s.requests, pl.workload.Distribution(), true)
	if err != nil {
		return fwk.NewStatus(fwk.Unschedulable, "gpupack: "+err.Error())
	}
	devices, ids := p.deviceIDs(view.Topology, p.reqs, pl.cache.Used(nodeName))
	pl.cache.Assume(pod.UID, nodeName, ids)
	cs.Write(devicesKey, &reserved{devices: devices})
	for i, r := range p.reqs { // as the node serves them
		pl.workload.Observe(score.TaskOf(view.State, r.req, p.choices[i]))
		observeChoice(r.req, p.choices[i])
	}
	observeDecision(pl.now().Sub(s.started))
	logger.V(3).Info("Reserved GPU devices", "pod", klog.KObj(pod), "node", nodeName, "devices", ids,
		"fragDelta", p.fragDelta, "qualityRatio", p.ratio)
	return nil
}

// Unreserve releases what Reserve held.
func (pl *GPUPack) Unreserve(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeName string) {
	if _, err := readState(cs); err != nil {
		return
	}
	pl.cache.Forget(pod.UID)
	cs.Delete(devicesKey)
	klog.FromContext(ctx).V(3).Info("Released GPU devices", "pod", klog.KObj(pod), "node", nodeName)
}
