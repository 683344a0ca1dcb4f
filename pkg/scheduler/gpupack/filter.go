package gpupack

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// Filter admits a node when a healthy free device set exists for every GPU
// container (meeting a required topology). Nodes without a readable
// gpupack.io/topology annotation, or whose gpupack.io/in-use report cannot
// be read (we could not tell which GPUs are in use), are rejected with the
// decoder's reason. Nominated pods and preemption victims the framework
// added or removed for this evaluation (AddPod/RemovePod) are accounted.
func (pl *GPUPack) Filter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	node := nodeInfo.Node()
	view, err := pl.cache.ViewOf(nodeInfo)
	if err != nil {
		klog.FromContext(ctx).V(5).Info("Node has no usable GPU topology", "node", klog.KObj(node), "err", err)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "gpupack: "+err.Error())
	}
	if a := s.adjust[node.Name]; a != nil {
		view = pl.adjusted(view, node.Name, a)
	}
	p, err := pl.makePlan(view, s.requests, false)
	if err != nil {
		return fwk.NewStatus(fwk.Unschedulable, "gpupack: "+err.Error())
	}
	s.setPlan(node.Name, p)
	return nil
}
