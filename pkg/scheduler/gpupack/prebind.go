package gpupack

import (
	"context"
	"encoding/json"
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/gpupack/gpupack/pkg/protocol"
)

// PreBindPreFlight skips PreBind for pods without a reserved choice.
func (pl *GPUPack) PreBindPreFlight(_ context.Context, cs fwk.CycleState, _ *v1.Pod, _ string) (*fwk.PreBindPreFlightResult, *fwk.Status) {
	if _, err := cs.Read(devicesKey); err != nil {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	return &fwk.PreBindPreFlightResult{AllowParallel: true}, nil
}

// PreBind writes gpupack.io/devices and gpupack.io/assumed-at on the pod,
// retrying on conflict, so the device plugin hands out exactly these
// devices.
func (pl *GPUPack) PreBind(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	d, err := cs.Read(devicesKey)
	if err != nil {
		return nil
	}
	r, ok := d.(*reserved)
	if !ok {
		return fwk.AsStatus(fmt.Errorf("%q in cycle state has type %T", devicesKey, d))
	}
	value, err := protocol.EncodeDevices(r.devices)
	if err != nil {
		return fwk.AsStatus(err)
	}
	patch, err := annotationPatch(pod, value, protocol.FormatAssumedAt(pl.now()))
	if err != nil {
		return fwk.AsStatus(err)
	}
	// One merge patch, no read first: the uid in it is a precondition (a pod
	// replaced under the same name refuses the patch), and annotations of
	// others are left alone, so there is no conflict to retry.
	_, err = pl.handle.ClientSet().CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fwk.AsStatus(fmt.Errorf("writing %s on pod %s/%s: %w", protocol.DevicesAnnotation, pod.Namespace, pod.Name, err))
	}
	klog.FromContext(ctx).V(3).Info("Annotated pod with its devices", "pod", klog.KObj(pod), "node", nodeName, "devices", value)
	return nil
}

// annotationPatch is the merge patch that sets our two annotations on pod.
func annotationPatch(pod *v1.Pod, devices, assumedAt string) ([]byte, error) {
	patch := map[string]any{"metadata": map[string]any{
		"uid": pod.UID,
		"annotations": map[string]string{
			protocol.DevicesAnnotation:   devices,
			protocol.AssumedAtAnnotation: assumedAt,
		},
	}}
	b, err := json.Marshal(patch)
	if err != nil {
		return nil, fmt.Errorf("encoding the annotation patch: %w", err)
	}
	return b, nil
}
