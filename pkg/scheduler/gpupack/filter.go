package gpupack

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// Filter admits a node when a healthy free device set exists for every GPU
// container (meeting a required topology), and the node has a healthy
// device of each GPU resource it serves that the pod lists at 0 (zero.go). Nodes without a readable
// gpupack.io/topology annotation, or whose gpupack.io/in-use report cannot
// be read (we could not tell which GPUs are in use), are rejected with the
// decoder's reason. Nominated pods and preemption victims the framework
// added or removed for this evaluation (AddPod/RemovePod) are accounted.
func (pl *GPUPack) Filter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	nodeInfo = cycleNodeInfo(cs, nodeInfo)
	node := nodeInfo.Node()
	z, zeros := readZeroAsks(cs)
	if zeros {
		if err := pl.checkZeroAsks(nodeInfo, z.names); err != nil {
			return filterStatus(ctx, node, err)
		}
	}
	s, err := readState(cs)
	if err != nil {
		if zeros {
			return nil // a CPU-only pod: its zeros were all to check
		}
		return fwk.AsStatus(err)
	}
	if a := s.adjust[node.Name]; a != nil {
		return pl.filterAdjusted(ctx, s, nodeInfo, a)
	}
	if _, err := pl.planFor(nodeInfo, s); err != nil {
		return filterStatus(ctx, node, err)
	}
	return nil
}

// filterAdjusted is Filter on a node with nominated pods or preemption
// victims for this evaluation: the plan is made on the adjusted view and
// kept in the cycle state for Score.
func (pl *GPUPack) filterAdjusted(ctx context.Context, s *cycleState, nodeInfo fwk.NodeInfo, a *adjustment) *fwk.Status {
	node := nodeInfo.Node()
	view, err := pl.cache.ViewNodeInfo(nodeInfo)
	if err != nil {
		return filterStatus(ctx, node, errNoView{err})
	}
	p, err := pl.makePlan(pl.adjusted(view, a, false), s.requests, pl.workload.Distribution(), false)
	if err != nil {
		return filterStatus(ctx, node, err)
	}
	s.setPlan(node.Name, p)
	return nil
}

// filterStatus is Filter's answer to planFor's error: a node without a
// usable view, one that does not serve the request, and one the request
// would not fit even empty are unresolvable (preemption skips them); a
// request that does not fit now is unschedulable.
func filterStatus(ctx context.Context, node *v1.Node, err error) *fwk.Status {
	if nv, ok := err.(errNoView); ok { // planFor returns it unwrapped
		klog.FromContext(ctx).V(5).Info("Node has no usable GPU topology", "node", klog.KObj(node), "err", nv.error)
		observePlacement(outcomeNodeRejected, reasonNoTopology)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "gpupack: "+nv.Error())
	}
	if _, ok := err.(errNotServed); ok { // resolve's, unwrapped
		observePlacement(outcomeNodeRejected, reasonNotServed)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "gpupack: "+err.Error())
	}
	if _, ok := err.(errNeverFits); ok { // makePlan's, unwrapped
		observePlacement(outcomeNodeRejected, reasonNeverFits)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "gpupack: "+err.Error())
	}
	observePlacement(outcomeNodeRejected, reasonNoFit)
	return fwk.NewStatus(fwk.Unschedulable, "gpupack: "+err.Error())
}
