package harness

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/kubelet/util/sliceutils"
)

// Admission is the outcome of a pod's admission on its node.
type Admission struct {
	// Devices are resource -> device IDs the device manager gave the pod.
	Devices map[string][]string
	// Err is why the kubelet rejected the pod (then it is marked Failed).
	Err error
}

// Cluster is a set of fake GPU nodes sharing one pod informer that sends
// every pod bound to one of them to that node's admission.
type Cluster struct {
	env Env

	mu    sync.Mutex
	nodes map[string]*Node

	stop chan struct{}
}

// NewCluster starts the pod informer; AddNode adds nodes.
func NewCluster(ctx context.Context, env Env) (*Cluster, error) {
	c := &Cluster{env: env, nodes: map[string]*Node{}, stop: make(chan struct{})}
	f := informers.NewSharedInformerFactory(env.Client, 0)
	inf := f.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.onPod(obj) },
		UpdateFunc: func(_, obj any) { c.onPod(obj) },
		DeleteFunc: c.onDelete,
	}); err != nil {
		return nil, fmt.Errorf("pod informer: %w", err)
	}
	f.Start(c.stop)
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			close(c.stop)
			return nil, fmt.Errorf("informer for %v did not sync", typ)
		}
	}
	return c, nil
}

// AddNode starts a fake node in the cluster.
func (c *Cluster) AddNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	n, err := StartNode(ctx, c.env, cfg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.nodes[cfg.Name] = n
	c.mu.Unlock()
	return n, nil
}

// Node returns a node by name, or nil.
func (c *Cluster) Node(name string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[name]
}

// Nodes returns every node.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Node, 0, len(c.nodes))
	for _, n := range c.nodes {
		out = append(out, n)
	}
	return out
}

// Stop stops every node and the informer.
func (c *Cluster) Stop(ctx context.Context) {
	close(c.stop)
	var wg sync.WaitGroup
	for _, n := range c.Nodes() {
		wg.Add(1)
		go func() { defer wg.Done(); n.Stop(ctx) }()
	}
	wg.Wait()
}

func terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || pod.DeletionTimestamp != nil
}

func (c *Cluster) onPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return
	}
	n := c.Node(pod.Spec.NodeName)
	if n == nil {
		return
	}
	if terminal(pod) {
		n.Kubelet.Forget(pod.UID)
		return
	}
	if a, _ := n.Outcome(pod.UID); a != nil && a.Err != nil {
		// kwok, the fake kubelet for everything but devices, may mark the
		// rejected pod Running after we marked it Failed: mark it again.
		go n.markFailed(context.Background(), pod, a.Err)
		return
	}
	n.enqueue(pod)
}

func (c *Cluster) onDelete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if n := c.Node(pod.Spec.NodeName); n != nil {
		n.Kubelet.Forget(pod.UID)
		n.mu.Lock()
		delete(n.queued, pod.UID)
		delete(n.outcomes, pod.UID)
		n.mu.Unlock()
	}
}

// WaitAdmitted waits until the named pod was admitted (or rejected) by its
// node and returns the outcome.
func (c *Cluster) WaitAdmitted(ctx context.Context, namespace, name string, timeout time.Duration) (*Admission, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		pod, err := c.env.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("pod %s/%s: %w", namespace, name, err)
		}
		var wake <-chan struct{}
		if n := c.Node(pod.Spec.NodeName); n != nil {
			a, changed := n.Outcome(pod.UID)
			if a != nil {
				return a, nil
			}
			wake = changed
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pod %s/%s not admitted (node %q): %w", namespace, name, pod.Spec.NodeName, ctx.Err())
		case <-wake:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// enqueue sends a bound pod to the node's admission once.
func (n *Node) enqueue(pod *corev1.Pod) {
	n.mu.Lock()
	if n.queued[pod.UID] {
		n.mu.Unlock()
		return
	}
	n.queued[pod.UID] = true
	n.mu.Unlock()
	n.admitq <- pod
}

// Outcome returns the pod's admission outcome, or nil and a channel closed
// at the next change.
func (n *Node) Outcome(uid types.UID) (*Admission, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.outcomes[uid], n.changed
}

// admitLoop admits the node's pods one at a time, in the order they were
// bound, as the kubelet's pod admission does.
func (n *Node) admitLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case pod := <-n.admitq:
			n.admitMu.Lock()
			if a, _ := n.Outcome(pod.UID); a == nil { // else admitted in a restart's batch
				n.admit(ctx, pod)
			}
			n.admitMu.Unlock()
		}
	}
}

// RestartKubelet restarts the node's kubelet as a kubelet restart does.
// While it is down, admission waits and down runs (bind pods then). The new
// kubelet's first list of the node's pods is one batch, admitted in
// creation-time order exactly as kubelet.HandlePodAdditions sorts it
// (sort.Sort(sliceutils.PodsByCreationTime(pods)), whole seconds, ties in no
// defined order): pending pods are allocated then, running ones keep their
// devices from the device manager's checkpoint. Pods bound afterwards are
// admitted one by one, in watch order, as before.
func (n *Node) RestartKubelet(ctx context.Context, down func() error) error {
	n.admitMu.Lock()
	defer n.admitMu.Unlock()
	_, before, _ := n.Kubelet.Capacity()
	if err := n.Kubelet.Restart(down); err != nil {
		return fmt.Errorf("node %s: restarting the kubelet: %w", n.cfg.Name, err)
	}
	// The device plugin registers again (it watches for kubelet.sock).
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		_, now, _ := n.Kubelet.Capacity()
		for name, q := range before {
			if got, ok := now[name]; !ok || !got.Equal(q) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("node %s: the device plugin did not register with the restarted kubelet: %w\n%s", n.cfg.Name, err, n.PluginLog(4096))
	}
	list, err := n.env.Client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", n.cfg.Name).String(),
	})
	if err != nil {
		return fmt.Errorf("node %s: listing its pods: %w", n.cfg.Name, err)
	}
	var batch []*corev1.Pod
	for i := range list.Items {
		if pod := &list.Items[i]; !terminal(pod) {
			batch = append(batch, pod)
		}
	}
	sort.Sort(sliceutils.PodsByCreationTime(batch))
	for _, pod := range batch {
		n.mu.Lock()
		a := n.outcomes[pod.UID]
		n.queued[pod.UID] = true
		n.mu.Unlock()
		switch {
		case a == nil:
			n.admit(ctx, pod)
		case a.Err == nil:
			// Running: admitted again, its devices come from the checkpoint.
			if err := n.Kubelet.Admit(ctx, pod); err != nil {
				return fmt.Errorf("node %s: running pod %s lost its admission on restart: %w", n.cfg.Name, klog.KObj(pod), err)
			}
		}
	}
	n.Kubelet.SourcesSeen()
	return nil
}

func (n *Node) admit(ctx context.Context, pod *corev1.Pod) {
	logger := klog.FromContext(ctx)
	a := &Admission{}
	if err := n.Kubelet.Admit(ctx, pod); err != nil {
		a.Err = err
		logger.Info("Pod rejected at admission", "pod", klog.KObj(pod), "err", err)
	} else {
		a.Devices = n.Kubelet.Devices(pod)
		logger.V(2).Info("Pod admitted", "pod", klog.KObj(pod), "devices", a.Devices)
	}
	// The outcome is recorded before the pod is marked Failed, so that
	// onPod sees it when kwok overwrites the phase (and marks it again).
	n.mu.Lock()
	n.outcomes[pod.UID] = a
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
	if a.Err != nil {
		n.reject(ctx, pod, a.Err)
	}
}

const admissionErrorReason = "UnexpectedAdmissionError"

func admissionErrorMessage(cause error) string {
	return fmt.Sprintf("Allocate failed due to %v, which is unexpected", cause)
}

// reject marks the pod Failed with the kubelet's reason and records an event.
func (n *Node) reject(ctx context.Context, pod *corev1.Pod, cause error) {
	logger := klog.FromContext(ctx)
	n.markFailed(ctx, pod, cause)
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: pod.Name + ".", Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, APIVersion: "v1"},
		Reason:         admissionErrorReason, Message: admissionErrorMessage(cause), Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "kubelet", Host: n.cfg.Name},
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(), Count: 1,
	}
	if _, err := n.env.Client.CoreV1().Events(pod.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		logger.Error(err, "Recording the admission event", "pod", klog.KObj(pod))
	}
}

// markFailed sets the pod's phase to Failed with the kubelet's reason.
func (n *Node) markFailed(ctx context.Context, pod *corev1.Pod, cause error) {
	logger := klog.FromContext(ctx)
	const reason = admissionErrorReason
	msg := admissionErrorMessage(cause)
	pods := n.env.Client.CoreV1().Pods(pod.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.UID != pod.UID || p.Status.Phase == corev1.PodFailed {
			return nil // another pod of that name, or done already
		}
		p.Status.Phase = corev1.PodFailed
		p.Status.Reason = reason
		p.Status.Message = msg
		_, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) {
		logger.Error(err, "Marking the rejected pod failed", "pod", klog.KObj(pod))
	}
}
