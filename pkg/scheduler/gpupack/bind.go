package gpupack

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
	schedutil "k8s.io/kubernetes/pkg/scheduler/util"

	"github.com/gpupack/gpupack/pkg/protocol"
)

// Bind binds a pod that holds a device choice with gpupack.io/devices and
// gpupack.io/assumed-at in the Binding's annotations: the apiserver merges
// them into the pod in the same write that sets spec.nodeName. The device
// plugin so never sees the pod on its node without its devices, and a GPU
// pod costs one API write, as for the default binder, not two. Pods without
// a choice are skipped and left to DefaultBinder.
func (pl *GPUPack) Bind(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	r, status := reservedOf(cs)
	if r == nil {
		return status
	}
	value := r.value
	binding := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
			Annotations: map[string]string{
				protocol.DevicesAnnotation:   value,
				protocol.AssumedAtAnnotation: protocol.FormatAssumedAt(pl.now()),
			},
		},
		Target: v1.ObjectReference{Kind: "Node", Name: nodeName},
	}
	if err := pl.bind(ctx, binding); err != nil {
		pl.holdIfApplied(ctx, pod, nodeName, value, err)
		return fwk.AsStatus(fmt.Errorf("binding pod %s/%s to %s with its devices: %w", pod.Namespace, pod.Name, nodeName, err))
	}
	klog.FromContext(ctx).V(3).Info("Bound pod with its devices", "pod", klog.KObj(pod), "node", nodeName, "devices", value)
	return nil
}

// readBackTimeout bounds holdIfApplied's read of the pod.
const readBackTimeout = 5 * time.Second

// holdIfApplied reads the pod back after a failed bind call: a call can
// fail after the apiserver applied the binding (a timeout, a connection
// lost after the write). When the pod is bound, the cache takes it as the
// informer would report it, so that Unreserve, which kube-scheduler runs
// next, keeps its devices held; the informer's report may come only after
// the next cycles, which would give them again. The pod may be bound by an
// earlier cycle's binding, applied although its call failed too (another
// node, other devices: this call then failed with a Conflict): what it was
// bound with is what it holds. When the read fails too, Unreserve frees
// this cycle's devices, as before: a binding not applied must not hold
// devices while the pod waits.
func (pl *GPUPack) holdIfApplied(ctx context.Context, pod *v1.Pod, nodeName, devices string, bindErr error) {
	cs := pl.handle.ClientSet()
	if cs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readBackTimeout)
	defer cancel()
	logger := klog.FromContext(ctx)
	got, err := cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		logger.V(2).Info("Cannot read a pod back after its bind call failed; its devices are freed", "pod", klog.KObj(pod), "node", nodeName, "bindErr", bindErr, "err", err)
		return
	}
	if got.UID != pod.UID || got.Spec.NodeName == "" {
		return
	}
	err = pl.cache.AddPod(got)
	if pl.goneFromInformer(got) {
		// Deleted or finished since the read: the informer's handler
		// forgot the pod before AddPod, and nothing would forget it again.
		pl.cache.Forget(got.UID)
		logger.V(2).Info("The bind call failed and the pod, bound, is gone since; its devices are freed", "pod", klog.KObj(pod), "node", got.Spec.NodeName, "bindErr", bindErr)
		return
	}
	if err != nil {
		logger.Error(err, "Pod bound with devices that do not decode", "pod", klog.KObj(pod), "node", got.Spec.NodeName)
		return
	}
	if got.Spec.NodeName != nodeName || got.Annotations[protocol.DevicesAnnotation] != devices {
		logger.Info("The bind call failed: the pod is bound by an earlier binding, whose devices stay held", "pod", klog.KObj(pod),
			"node", got.Spec.NodeName, "devices", got.Annotations[protocol.DevicesAnnotation], "thisCycleNode", nodeName, "err", bindErr)
		return
	}
	logger.Info("The bind call failed but the pod is bound; its devices stay held", "pod", klog.KObj(pod), "node", nodeName, "err", bindErr)
}

// goneFromInformer reports whether the scheduler's pod informer no longer
// holds pod: deleted (or created again under its name) or finished
// (kube-scheduler's pod informer leaves finished pods out). The informer
// updates its store before it runs the handlers, so a pod its store still
// holds will be forgotten by the cache's handler when it goes. False while
// the informer has not synced (its store does not know yet).
func (pl *GPUPack) goneFromInformer(pod *v1.Pod) bool {
	f := pl.handle.SharedInformerFactory()
	if f == nil || !f.Core().V1().Pods().Informer().HasSynced() {
		return false
	}
	got, err := f.Core().V1().Pods().Lister().Pods(pod.Namespace).Get(pod.Name)
	if err != nil {
		return apierrors.IsNotFound(err)
	}
	return got.UID != pod.UID || podutil.IsPodTerminal(got)
}

// bind sends the binding through the scheduler's API cacher when it has one
// (as DefaultBinder does), else straight to the apiserver.
func (pl *GPUPack) bind(ctx context.Context, binding *v1.Binding) error {
	if c := pl.handle.APICacher(); c != nil {
		onFinish, err := c.BindPod(binding)
		if err != nil {
			return err
		}
		return c.WaitOnFinish(ctx, onFinish)
	}
	return schedutil.BindPod(ctx, pl.handle.ClientSet(), binding)
}

// reservedOf returns the pod's reserved choice, or nil with a Skip status
// (no GPU request: another binder binds it) or an error status.
func reservedOf(cs fwk.CycleState) (*reserved, *fwk.Status) {
	d, err := cs.Read(devicesKey)
	if err != nil {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	r, ok := d.(*reserved)
	if !ok {
		return nil, fwk.AsStatus(fmt.Errorf("%q in cycle state has type %T", devicesKey, d))
	}
	return r, nil
}
