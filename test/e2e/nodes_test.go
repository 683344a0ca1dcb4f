package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpupack/gpupack/pkg/topology"
	"github.com/gpupack/gpupack/test/harness"
)

// The tests in this file run fake GPU nodes with the real kubelet device
// manager and our device-plugin binary (test/harness): the whole handoff,
// scheduler -> annotation -> GetPreferredAllocation -> Allocate -> in-use.

// startNodes starts the harness with the given nodes (name -> machine).
func (e *env) startNodes(nodes ...harness.NodeConfig) *harness.Cluster {
	t := e.t
	_, ctx := ktesting.NewTestContext(t)
	c, err := harness.NewCluster(ctx, harness.Env{Client: e.client, Kubeconfig: e.cp.Kubeconfig, PluginBin: pluginBin, LogDir: e.dir})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes() {
				t.Logf("device plugin of %s (tail):\n%s", n.Name(), n.PluginLog(6000))
			}
		}
		c.Stop(ctx)
	})
	for _, n := range nodes {
		_, err := c.AddNode(ctx, n)
		require.NoError(t, err)
	}
	return c
}

// publishedTopology waits for the node's topology annotation that satisfies ok.
func (e *env) publishedTopology(node string, ok func(*topology.Node) bool) *topology.Node {
	var topo *topology.Node
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		if topo, err = harness.Topology(ctx, e.client, node); errors.Is(err, harness.ErrNotPublished) {
			return false, nil
		}
		return err == nil && ok(topo), err
	})
	require.NoError(e.t, err, "node %s never published the expected topology", node)
	return topo
}

func anyTopology(*topology.Node) bool { return true }

// admittedExactly waits for the pod's admission and requires that the
// device manager gave it exactly the scheduler's choice.
func (e *env) admittedExactly(c *harness.Cluster, name string) []string {
	t := e.t
	pod := e.waitBound(name)
	a, err := c.WaitAdmitted(context.Background(), "default", name, 60*time.Second)
	require.NoError(t, err)
	require.NoError(t, a.Err, "pod %s rejected at admission", name)
	want := slices.Sorted(slices.Values(devicesOf(t, pod)))
	require.Equal(t, want, a.Devices[gpuResource], "pod %s: the kubelet must allocate exactly the scheduler's choice", name)
	return want
}

// requireInUse waits until the node's in-use report holds exactly these
// pods (name -> device IDs).
func (e *env) requireInUse(node string, want map[string][]string) {
	var got map[string][]string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		u, err := harness.InUse(ctx, e.client, node)
		if errors.Is(err, harness.ErrNodeRead) {
			return false, err
		}
		if err != nil {
			return false, nil // not published yet
		}
		got = map[string][]string{}
		for _, p := range u.Pods {
			got[p.Name] = slices.Sorted(slices.Values(p.Devices))
		}
		return fmt.Sprint(got) == fmt.Sprint(want), nil
	})
	require.NoError(e.t, err, "in-use report of %s: got %v, want %v", node, got, want)
}

// requireDisjoint fails when a device ID appears in two pods' sets; the
// sets are of pods on one node (device IDs are per node).
func requireDisjoint(t *testing.T, sets map[string][]string) {
	owner := map[string]string{}
	for _, pod := range slices.Sorted(maps.Keys(sets)) {
		for _, id := range sets[pod] {
			require.Empty(t, owner[id], "device %s given to both %s and %s", id, owner[id], pod)
			owner[id] = pod
		}
	}
}

// Pods the scheduler places on one node at the same time each get, from
// the kubelet, exactly the GPUs the scheduler chose for them.
func TestConcurrentExactDeviceHandoff(t *testing.T) {
	e := newEnv(t)
	c := e.startNodes(harness.NodeConfig{Name: "v100", Machine: "dgx-1-v100"})
	e.publishedTopology("v100", anyTopology)
	e.startScheduler()

	// 2 + 2 + 1 + 1 + 1 + 1 = 8: the node's every GPU, all at once.
	sizes := []int{2, 2, 1, 1, 1, 1}
	for i, n := range sizes {
		e.createPod(gpuPod(podName("burst", i), n, nil))
	}
	got := map[string][]string{}
	for i := range sizes {
		name := podName("burst", i)
		got[name] = e.admittedExactly(c, name)
	}
	requireDisjoint(t, got)
	e.requireInUse("v100", got)
}

// A device plugin restart keeps the pods' GPUs: after it, new pods get
// exactly their chosen GPUs, none of those already held, and the in-use
// report still names every pod.
func TestDevicePluginRestart(t *testing.T) {
	e := newEnv(t)
	c := e.startNodes(harness.NodeConfig{Name: "v100", Machine: "dgx-1-v100"})
	e.publishedTopology("v100", anyTopology)
	e.startScheduler()

	e.createPod(gpuPod("before", 4, nil))
	got := map[string][]string{"before": e.admittedExactly(c, "before")}
	e.requireInUse("v100", got)

	// While the plugin is down the kubelet marks its devices unhealthy, the
	// node's allocatable drops to 0, and a new pod waits.
	n := c.Node("v100")
	require.NoError(t, n.StopPlugin())
	e.waitAllocatable("v100", 0)
	e.createPod(gpuPod("during", 2, nil))
	e.requireUnschedulable("during")

	// Back up, the plugin re-registers; the waiting pod and a new one get
	// exactly their chosen GPUs among the 8 - 4 = 4 left, none of before's.
	_, ctx := ktesting.NewTestContext(t)
	require.NoError(t, n.StartPlugin(ctx))
	e.waitAllocatable("v100", 8)
	e.createPod(gpuPod("after", 2, nil))
	for _, name := range []string{"during", "after"} {
		got[name] = e.admittedExactly(c, name)
	}
	requireDisjoint(t, got)
	e.requireInUse("v100", got)
	e.createPod(gpuPod("extra", 1, nil))
	e.requireUnschedulable("extra")
}

// waitAllocatable waits until the node's allocatable GPU count is n.
func (e *env) waitAllocatable(node string, n int64) {
	var got int64
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		obj, err := e.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		q := obj.Status.Allocatable[gpuResource]
		got = q.Value()
		return got == n, nil
	})
	require.NoError(e.t, err, "node %s allocatable %s: got %d, want %d", node, gpuResource, got, n)
}

// An XID on a GPU makes the plugin report it unhealthy, and the scheduler
// never places a pod on it.
func TestXIDMakesTheSchedulerAvoidTheGPU(t *testing.T) {
	e := newEnv(t)
	c := e.startNodes(harness.NodeConfig{Name: "v100", Machine: "dgx-1-v100"})
	e.publishedTopology("v100", anyTopology)
	e.startScheduler()

	// XID 48 (double-bit ECC) is fatal; GPU 2 goes unhealthy.
	_, ctx := ktesting.NewTestContext(t)
	require.NoError(t, c.Node("v100").InjectXID(ctx, 2, 48))
	topo := e.publishedTopology("v100", func(n *topology.Node) bool { return !n.GPUs[2].Healthy })
	bad := topo.GPUs[2].UUID

	// 8 - 1 = 7 healthy GPUs: seven 1-GPU pods fit, none on GPU 2.
	got := map[string][]string{}
	for i := range 7 {
		e.createPod(gpuPod(podName("infer", i), 1, nil))
	}
	for i := range 7 {
		name := podName("infer", i)
		got[name] = e.admittedExactly(c, name)
		require.NotContains(t, got[name], bad, "pod %s got the GPU with the XID", name)
	}
	requireDisjoint(t, got)
	e.createPod(gpuPod("extra", 1, nil))
	e.requireUnschedulable("extra")
}

// Pods placed by another scheduler take GPUs the kubelet picks; our
// scheduler learns them from the in-use report and never gives them again.
func TestOtherSchedulersPodsCountedThroughInUse(t *testing.T) {
	e := newEnv(t)
	c := e.startNodes(harness.NodeConfig{Name: "v100", Machine: "dgx-1-v100"})
	e.publishedTopology("v100", anyTopology)
	e.startScheduler()

	// Another scheduler binds a 3-GPU pod (spec.nodeName set directly).
	other := gpuPod("other", 3, nil)
	other.Spec.SchedulerName = corev1.DefaultSchedulerName
	other.Spec.NodeName = "v100"
	e.createPod(other)
	a, err := c.WaitAdmitted(context.Background(), "default", "other", 60*time.Second)
	require.NoError(t, err)
	require.NoError(t, a.Err)
	got := map[string][]string{"other": a.Devices[gpuResource]}
	require.Len(t, got["other"], 3)
	e.requireInUse("v100", got)

	// 8 - 3 = 5 GPUs left for our pods, none of the other pod's.
	for i := range 5 {
		e.createPod(gpuPod(podName("ours", i), 1, nil))
	}
	for i := range 5 {
		name := podName("ours", i)
		got[name] = e.admittedExactly(c, name)
	}
	requireDisjoint(t, got)
	e.createPod(gpuPod("extra", 1, nil))
	e.requireUnschedulable("extra")
}
