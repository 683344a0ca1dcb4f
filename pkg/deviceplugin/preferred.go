package deviceplugin

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/score"
)

// GetPreferredAllocation returns, per container, the scheduler's choice from
// a pod annotation when one fits (DESIGN.md section 4), else the choice of
// score.Preferred. When neither yields a set the answer is empty and the
// kubelet chooses. Unknown device IDs, and an ID listed twice in the
// available or the must-include devices, are InvalidArgument.
func (p *Plugin) GetPreferredAllocation(ctx context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	logger := klog.FromContext(ctx).WithValues("resource", p.resource.Name)
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, creq := range req.GetContainerRequests() {
		avail, must, size := creq.GetAvailableDeviceIDs(), creq.GetMustIncludeDeviceIDs(), int(creq.GetAllocationSize())
		for _, lists := range [][]string{avail, must} {
			seen := make(map[string]bool, len(lists))
			for _, id := range lists {
				if _, ok := p.byID[id]; !ok {
					p.metrics.reject(p.resource.Name, "unknown-device")
					return nil, status.Errorf(codes.InvalidArgument, "resource %s: unknown device ID %q", p.resource.Name, id)
				}
				if seen[id] { // the kubelet sends sets: an answer could name it twice
					p.metrics.reject(p.resource.Name, "duplicate-device")
					return nil, status.Errorf(codes.InvalidArgument, "resource %s: device ID %q listed twice", p.resource.Name, id)
				}
				seen[id] = true
			}
		}
		ids, outcome := p.prefer(ctx, avail, must, size)
		p.metrics.handoff(p.resource.Name, outcome)
		logger.V(2).Info("Preferred allocation", "size", size, "available", len(avail), "devices", ids, "outcome", outcome)
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids})
	}
	return resp, nil
}

func (p *Plugin) prefer(ctx context.Context, avail, must []string, size int) ([]string, string) {
	if size <= 0 || size > len(avail) {
		return nil, OutcomeNone
	}
	ids, pod, ok := p.handoff.scheduledSet(ctx, p.allocs, p.resource.Name, avail, must, size)
	if ok {
		klog.FromContext(ctx).V(2).Info("Honouring the scheduler's device choice", "pod", klog.KObj(pod), "devices", ids)
		return ids, OutcomeScheduler
	}
	if !p.scorable {
		return nil, OutcomeNone
	}
	req := p.request
	req.Count = size
	// The plugin's own choice for the pod whose turn it is keeps that pod's
	// topology hint: a required pod gets a set of the best class the node
	// still offers, and only when there is none the best set left.
	if pod != nil {
		hint, err := protocol.TopologyHintOf(pod, score.HintPreferred)
		if err != nil {
			klog.FromContext(ctx).Info("Ignoring the pod's malformed topology hint", "pod", klog.KObj(pod), "err", err)
		}
		req.Topology = hint
	}
	ids, err := score.Preferred(p.node(), req, avail, must, p.opts.Workload)
	if err != nil && req.Topology == score.HintRequired {
		klog.FromContext(ctx).Info("No set left meets the pod's required topology; choosing the best left", "pod", klog.KObj(pod), "size", size, "err", err)
		req.Topology = score.HintPreferred
		ids, err = score.Preferred(p.node(), req, avail, must, p.opts.Workload)
	}
	if err != nil {
		klog.FromContext(ctx).V(2).Info("No preferred set, the kubelet chooses", "size", size, "err", err)
		return nil, OutcomeNone
	}
	if pod != nil {
		p.handoff.OwnChoice(p.resource.Name, ids)
	}
	return ids, OutcomeOwn
}
