package gpupack

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedutil "k8s.io/kubernetes/pkg/scheduler/util"

	"github.com/gpupack/gpupack/pkg/protocol"
)

// EventsToRegister retries GPU pods rejected by this plugin when a node
// appears or its topology / in-use report changes, or when an assigned pod
// holding devices goes away.
//
// kube-scheduler asks for the events once its profiles are built, so this is
// also where the profile GPUPack runs in is checked (checkProfile): a
// profile that would bind GPU pods without their devices fails the
// scheduler's start with the reason.
func (pl *GPUPack) EventsToRegister(ctx context.Context) ([]fwk.ClusterEventWithHint, error) {
	if l, ok := pl.handle.(pluginLister); ok {
		plugins := l.ListPlugins()
		scores, err := checkProfile(plugins)
		if err != nil {
			return nil, fmt.Errorf("profile %q: %w", pl.handle.ProfileName(), err)
		}
		for _, w := range profileWarnings(plugins, scores) {
			klog.FromContext(ctx).Info("Warning: "+w, "profile", pl.handle.ProfileName())
		}
	}
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAnnotation}, QueueingHintFn: pl.isSchedulableAfterNodeChange},
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Delete}, QueueingHintFn: pl.isSchedulableAfterPodDelete},
	}, nil
}

func (pl *GPUPack) isSchedulableAfterNodeChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	oldNode, newNode, err := schedutil.As[*v1.Node](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if _, ok := newNode.Annotations[protocol.TopologyAnnotation]; !ok {
		return fwk.QueueSkip, nil
	}
	if oldNode == nil ||
		oldNode.Annotations[protocol.TopologyAnnotation] != newNode.Annotations[protocol.TopologyAnnotation] ||
		oldNode.Annotations[protocol.InUseAnnotation] != newNode.Annotations[protocol.InUseAnnotation] {
		logger.V(5).Info("GPU node changed, pod may fit", "pod", klog.KObj(pod), "node", klog.KObj(newNode))
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

func (pl *GPUPack) isSchedulableAfterPodDelete(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	deleted, _, err := schedutil.As[*v1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if _, ok := deleted.Annotations[protocol.DevicesAnnotation]; ok {
		logger.V(5).Info("Pod holding GPUs went away, pod may fit", "pod", klog.KObj(pod), "deleted", klog.KObj(deleted))
		return fwk.Queue, nil
	}
	reqs, _, _ := pl.parse(deleted)
	if len(reqs) > 0 {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}
