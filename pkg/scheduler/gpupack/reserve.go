package gpupack

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
	"github.com/gpupack/gpupack/pkg/topology"
)

const devicesKey fwk.StateKey = Name + "/devices"

// reserved is the choice Reserve made, for Bind: devices and their
// gpupack.io/devices value.
type reserved struct {
	devices protocol.Devices
	value   string
}

// Clone shares the (immutable) choice.
func (r *reserved) Clone() fwk.StateData { return r }

// Reserve chooses the exact devices against the cache's current usage (other
// pods may have been reserved since Filter) and holds them for the pod. The
// choice is made around the nominated pods Filter counted on the node
// (those of at least the pod's priority), so that the devices a waiting
// nominated pod needs stay free.
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
	view, err := pl.cache.ViewNodeInfo(cycleNodeInfo(cs, nodeInfo))
	if err != nil {
		observePlacement(outcomeReserveFailed, reasonNoView)
		return fwk.NewStatus(fwk.Unschedulable, "gpupack: "+err.Error())
	}
	if a := pl.nominatedOn(pod, nodeName); a != nil {
		view = pl.adjusted(view, a, true)
	}
	p, err := pl.makePlan(view, s.requests, pl.workload.Distribution(), true)
	if err != nil {
		observePlacement(outcomeReserveFailed, reasonNoFit)
		return fwk.NewStatus(fwk.Unschedulable, "gpupack: "+err.Error())
	}
	devices, ids := p.deviceIDs(view.Topology, p.reqs, view.Used(nil), pl.picker)
	value, err := protocol.EncodeDevices(devices)
	if err != nil {
		// Too many devices for the annotation (thousands of replicas):
		// Bind could never write the choice, on any node.
		observePlacement(outcomeReserveFailed, reasonTooLarge)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf(
			"gpupack: the pod's %d devices cannot be handed to the device plugin: %v; ask for fewer devices (replicas) per pod", len(ids), err))
	}
	pl.cache.Assume(pod.UID, nodeName, ids)
	cs.Write(devicesKey, &reserved{devices: devices, value: value})
	for i, r := range p.reqs { // as the node serves them
		pl.workload.Observe(score.TaskOf(view.State, r.req, p.choices[i]))
		observeChoice(r.req, p.choices[i])
	}
	observeDecision(pl.now().Sub(s.started))
	observePlacement(outcomeReserved, reservedReason(p.ratio))
	logger.V(3).Info("Reserved GPU devices", "pod", klog.KObj(pod), "node", nodeName, "devices", ids,
		"fragDelta", p.fragDelta, "qualityRatio", p.ratio)
	return nil
}

// Unreserve releases what Reserve held, unless the informer has meanwhile
// reported the pod bound with those devices (the bind call failed after the
// apiserver applied it): that pod keeps them until it is deleted.
func (pl *GPUPack) Unreserve(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeName string) {
	if _, err := readState(cs); err != nil {
		return
	}
	pl.cache.Unassume(pod.UID)
	cs.Delete(devicesKey)
	observePlacement(outcomeUnreserved, reasonReleased)
	klog.FromContext(ctx).V(3).Info("Released GPU devices", "pod", klog.KObj(pod), "node", nodeName)
}

// picker chooses a container's devices within its pod's set as the device
// plugin's GetPreferredAllocation will (score.Preferred).
func (pl *GPUPack) picker(node *topology.Node, req score.Request) pickFunc {
	return func(n int, avail, must []string) ([]string, error) {
		r := req
		r.Count = n
		r.CPUMilli, r.MemoryMiB = 0, 0
		return score.Preferred(node, r, avail, must, pl.workload)
	}
}
