package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/gpupack/gpupack/pkg/nvml/fake"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
	"github.com/gpupack/gpupack/test/cluster"
)

const (
	gpuResource   = "nvidia.com/gpu"
	schedulerName = "gpupack-scheduler"
)

// env is one control plane with our scheduler running against it.
type env struct {
	t      *testing.T
	cp     *cluster.ControlPlane
	client kubernetes.Interface
	sched  *cluster.Process
	dir    string
}

func newEnv(t *testing.T) *env {
	cp := cluster.StartForTest(t)
	client, err := kubernetes.NewForConfig(cp.RESTConfig(""))
	require.NoError(t, err)
	return &env{t: t, cp: cp, client: client, dir: t.TempDir()}
}

// startScheduler runs the scheduler binary with manifests/scheduler/config.yaml,
// pointed at this control plane, leader election off.
func (e *env) startScheduler() { e.startSchedulerVia("") }

// startSchedulerVia is startScheduler with the scheduler's client going
// through kubeconfig ("": straight to the apiserver).
func (e *env) startSchedulerVia(kubeconfig string) {
	t := e.t
	var edit func(map[string]any)
	if kubeconfig != "" {
		edit = func(cfg map[string]any) { cfg["clientConnection"].(map[string]any)["kubeconfig"] = kubeconfig }
	}
	path, err := e.cp.WriteSchedulerConfig("../../manifests/scheduler/config.yaml", e.dir, 500, edit)
	require.NoError(t, err)
	p, err := cluster.StartProcess(context.Background(), e.dir, "scheduler", schedulerBin, "--config="+path, "--secure-port=0", "--v=2")
	require.NoError(t, err)
	e.sched = p
	t.Cleanup(func() {
		e.stopScheduler()
		if t.Failed() {
			t.Logf("scheduler log (tail):\n%s", p.Tail(6000))
		}
	})
}

func (e *env) stopScheduler() {
	if e.sched == nil {
		return
	}
	if err := e.sched.Stop(10 * time.Second); err != nil {
		e.t.Logf("stopping the scheduler: %v", err)
	}
	e.sched = nil
}

// addNode creates a Ready fake node with the topology of a catalog machine,
// as the device plugin would publish it.
func (e *env) addNode(name, machine string) *topology.Node {
	t := e.t
	topo, err := fake.Topology(machine)
	require.NoError(t, err)
	ann, err := protocol.EncodeTopology(topo)
	require.NoError(t, err)

	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        name,
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", protocol.TopologyAnnotation: ann},
		Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": name},
	}}
	_, err = e.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	require.NoError(t, err)
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("96"),
		corev1.ResourceMemory: resource.MustParse("1Ti"),
		corev1.ResourcePods:   resource.MustParse("110"),
		gpuResource:           *resource.NewQuantity(int64(len(topo.GPUs)), resource.DecimalSI),
	}
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := e.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		n.Status.Capacity, n.Status.Allocatable = capacity, capacity
		_, err = e.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err == nil, nil // retry on conflict with kwok's heartbeat
	}))
	return topo
}

// gpuPod is a pod of our scheduler asking for gpus whole GPUs.
func gpuPod(name string, gpus int, annotations map[string]string) *corev1.Pod {
	return fixture.MakePod().Name(name).AnnotationMap(annotations).SchedulerName(schedulerName).
		Container("main").Image("registry.example/train:latest").
		RequestQuantity(string(corev1.ResourceCPU), resource.MustParse("1")).
		Request(gpuResource, int64(gpus)).Limit(gpuResource, int64(gpus)).Obj()
}

func (e *env) createPod(p *corev1.Pod) {
	_, err := e.client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	require.NoError(e.t, err)
}

// waitBound waits until the pod is bound and carries the devices annotation.
func (e *env) waitBound(name string) *corev1.Pod {
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := e.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = p
		return p.Spec.NodeName != "" && p.Annotations[protocol.DevicesAnnotation] != "", nil
	})
	require.NoError(e.t, err, "pod %s not bound with devices", name)
	return pod
}

// devicesOf decodes the scheduler's choice written on a pod.
func devicesOf(t *testing.T, p *corev1.Pod) []string {
	d, err := protocol.DecodeDevices(p.Annotations[protocol.DevicesAnnotation])
	require.NoError(t, err, "pod %s", p.Name)
	return d.Resources[gpuResource]
}

// requireUnschedulable waits until the scheduler reports the pod unschedulable.
func (e *env) requireUnschedulable(name string) {
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := e.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		require.Empty(e.t, p.Spec.NodeName, "pod %s must not be bound", name)
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return true, nil
			}
		}
		return false, nil
	})
	require.NoError(e.t, err, "pod %s never reported unschedulable", name)
}

// indexOf maps device IDs (GPU UUIDs) to GPU indexes of a node.
func indexOf(t *testing.T, topo *topology.Node, ids []string) topology.GPUSet {
	set, unknown := topo.SetOfUUIDs(ids)
	require.Empty(t, unknown, "not GPUs of the node")
	return set
}

func podName(prefix string, i int) string { return fmt.Sprintf("%s-%d", prefix, i) }
