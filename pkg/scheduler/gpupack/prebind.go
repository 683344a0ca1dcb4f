package gpupack

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
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
	at := protocol.FormatAssumedAt(pl.now())
	client := pl.handle.ClientSet()
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != pod.UID {
			return fmt.Errorf("pod %s/%s was replaced (uid %s, want %s)", pod.Namespace, pod.Name, cur.UID, pod.UID)
		}
		cur = cur.DeepCopy()
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		cur.Annotations[protocol.DevicesAnnotation] = value
		cur.Annotations[protocol.AssumedAtAnnotation] = at
		_, err = client.CoreV1().Pods(pod.Namespace).Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fwk.AsStatus(fmt.Errorf("writing %s on pod %s/%s: %w", protocol.DevicesAnnotation, pod.Namespace, pod.Name, err))
	}
	klog.FromContext(ctx).V(3).Info("Annotated pod with its devices", "pod", klog.KObj(pod), "node", nodeName, "devices", value)
	return nil
}
