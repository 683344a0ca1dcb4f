package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
	"github.com/gpupack/gpupack/test/cluster"
)

var pluginBin string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gpupack-harness-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if pluginBin, err = cluster.BuildGo(dir, "device-plugin", "github.com/gpupack/gpupack/cmd/device-plugin"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func startCluster(t *testing.T) (*Cluster, kubernetes.Interface, context.Context) {
	cp := cluster.StartForTest(t)
	client, err := kubernetes.NewForConfig(cp.RESTConfig(""))
	require.NoError(t, err)
	_, ctx := ktesting.NewTestContext(t)
	c, err := NewCluster(ctx, Env{Client: client, Kubeconfig: cp.Kubeconfig, PluginBin: pluginBin, LogDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes() {
				t.Logf("device plugin of %s (tail):\n%s", n.Name(), n.PluginLog(4000))
			}
		}
		c.Stop(ctx)
	})
	return c, client, ctx
}

func boundPod(name, node string, resources map[string]int64) *corev1.Pod {
	p := fixture.MakePod().Name(name).Node(node).Container("main").Image("registry.example/x")
	for r, q := range resources {
		p.Limit(r, q)
	}
	return p.Obj()
}

// A fake node advertises what its device plugin reports to the real device
// manager, admits bound pods through Allocate, reports them in use, and
// frees their GPUs when they go.
func TestNodeAdvertisesAdmitsAndReports(t *testing.T) {
	c, client, ctx := startCluster(t)
	v100, err := c.AddNode(ctx, NodeConfig{Name: "v100", Machine: "dgx-1-v100"})
	require.NoError(t, err)
	// A malformed fault is refused with the plugin's reason.
	require.ErrorContains(t, v100.InjectXID(ctx, 99, 48), "want an index in [0, 8)")
	_, err = c.AddNode(ctx, NodeConfig{Name: "a100", Machine: "dgx-a100", FakeMIG: "0=3g.20gb+2g.10gb+1g.5gb+1g.5gb,1=7g.40gb"})
	require.NoError(t, err)

	// DGX-1: 8 whole GPUs. DGX A100 with GPUs 0 and 1 in MIG mode: 8 - 2 = 6
	// whole GPUs, 3g.20gb x1, 2g.10gb x1, 1g.5gb x2, 7g.40gb x1.
	requireAllocatable(t, client, "v100", map[string]int64{"nvidia.com/gpu": 8})
	requireAllocatable(t, client, "a100", map[string]int64{
		"nvidia.com/gpu": 6, "nvidia.com/mig-3g.20gb": 1, "nvidia.com/mig-2g.10gb": 1, "nvidia.com/mig-1g.5gb": 2, "nvidia.com/mig-7g.40gb": 1,
	})
	topo := nodeTopology(t, client, "v100")

	// Two pods bound without a scheduler choice: the kubelet asks the
	// plugin's preference, which is an NVLink pair on the DGX-1.
	for _, name := range []string{"pair-0", "pair-1"} {
		_, err = client.CoreV1().Pods("default").Create(ctx, boundPod(name, "v100", map[string]int64{"nvidia.com/gpu": 2}), metav1.CreateOptions{})
		require.NoError(t, err)
	}
	_, err = client.CoreV1().Pods("default").Create(ctx, boundPod("mig", "a100", map[string]int64{"nvidia.com/mig-1g.5gb": 1}), metav1.CreateOptions{})
	require.NoError(t, err)
	held := map[string]bool{}
	for _, name := range []string{"pair-0", "pair-1"} {
		a, err := c.WaitAdmitted(ctx, "default", name, 60*time.Second)
		require.NoError(t, err)
		require.NoError(t, a.Err)
		ids := a.Devices["nvidia.com/gpu"]
		require.Len(t, ids, 2)
		set := setOf(t, topo, ids)
		i, j := set.Indexes()[0], set.Indexes()[1]
		require.True(t, topo.Links[i][j].Class.IsNVLink(), "%s got GPUs %d and %d", name, i, j)
		for _, id := range ids {
			require.False(t, held[id], "GPU %s given twice", id)
			held[id] = true
		}
	}
	a, err := c.WaitAdmitted(ctx, "default", "mig", 60*time.Second)
	require.NoError(t, err)
	require.NoError(t, a.Err)
	require.Len(t, a.Devices["nvidia.com/mig-1g.5gb"], 1)

	// The in-use report names both pods and exactly their GPUs.
	requireInUse(t, client, "v100", held)

	// A pod asking more than is left (8 - 4 = 4 free, asks 5) is rejected
	// at admission, marked Failed with the kubelet's reason.
	_, err = client.CoreV1().Pods("default").Create(ctx, boundPod("too-big", "v100", map[string]int64{"nvidia.com/gpu": 5}), metav1.CreateOptions{})
	require.NoError(t, err)
	a, err = c.WaitAdmitted(ctx, "default", "too-big", 60*time.Second)
	require.NoError(t, err)
	require.ErrorContains(t, a.Err, "requested number of devices unavailable")
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "too-big", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodFailed && p.Status.Reason == "UnexpectedAdmissionError", nil
	}))

	// Deleting a pod frees its GPUs in the report.
	require.NoError(t, client.CoreV1().Pods("default").Delete(ctx, "pair-0", metav1.DeleteOptions{}))
	p1, err := c.WaitAdmitted(ctx, "default", "pair-1", 60*time.Second)
	require.NoError(t, err)
	left := map[string]bool{}
	for _, id := range p1.Devices["nvidia.com/gpu"] {
		left[id] = true
	}
	requireInUse(t, client, "v100", left)
}

func requireAllocatable(t *testing.T, client kubernetes.Interface, node string, want map[string]int64) {
	t.Helper()
	var got map[string]int64
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = map[string]int64{}
		for name, q := range n.Status.Allocatable {
			if _, ok := want[string(name)]; ok {
				got[string(name)] = q.Value()
			}
		}
		return fmt.Sprint(got) == fmt.Sprint(want), nil
	})
	require.NoError(t, err, "node %s allocatable: got %v, want %v", node, got, want)
}

func nodeTopology(t *testing.T, client kubernetes.Interface, node string) *topology.Node {
	t.Helper()
	var topo *topology.Node
	require.NoError(t, wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		if topo, err = Topology(ctx, client, node); errors.Is(err, ErrNotPublished) {
			return false, nil
		}
		return err == nil, err
	}))
	return topo
}

// requireInUse waits until the node's in-use report holds exactly ids.
func requireInUse(t *testing.T, client kubernetes.Interface, node string, ids map[string]bool) {
	t.Helper()
	var got map[string]bool
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		u, err := InUse(ctx, client, node)
		if errors.Is(err, ErrNodeRead) {
			return false, err
		}
		if err != nil {
			return false, nil // not published yet
		}
		got = u.IDs()
		return fmt.Sprint(got) == fmt.Sprint(ids), nil
	})
	require.NoError(t, err, "in-use on %s: got %v, want %v", node, got, ids)
}

func setOf(t *testing.T, topo *topology.Node, ids []string) topology.GPUSet {
	set, unknown := topo.SetOfUUIDs(ids)
	require.Empty(t, unknown, "not GPUs of the node")
	return set
}
